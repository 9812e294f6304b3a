// Regenerates examples/data/orders.csv: a few thousand realistic, deterministic order rows.
// Usage: node scripts/make-sample-data.js [rows]
import { writeFileSync } from 'node:fs';

const rows = Number(process.argv[2] ?? 5000);
let state = 20261127;
const rand = () => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state / 2 ** 32;
};
const pick = (list) => list[Math.floor(rand() * list.length)];

const first = ['Amira', 'Ben', 'Chloé', 'Dmitri', 'Elena', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kofi', 'Lena', 'Mateo', 'Nadia', 'Oskar', 'Priya', 'Quentin', 'Rosa', 'Sven', 'Tariq', 'Uma', 'Viktor', 'Wen', 'Yara', 'Zoë'];
const last = ['Okafor', 'Schmidt', 'Dubois', 'Ivanov', 'García', 'Haddad', 'Kim', 'Tanaka', 'Silva', 'Nielsen', 'Mensah', 'Rossi', 'López', 'Novak', 'Berg', 'Patel', 'Moreau', 'Costa', 'Larsen', 'Aziz'];
const countries = ['DE', 'FR', 'ES', 'IT', 'NL', 'SE', 'PL', 'PT', 'GB', 'US', 'CA', 'JP', 'IN', 'BR', 'NG'];
const products = [
  ['Espresso beans 1kg', 24.9],
  ['Pour-over kettle', 59.0],
  ['Ceramic mug', 12.5],
  ['Hand grinder', 89.0],
  ['Paper filters (100)', 6.2],
  ['Milk frother', 34.99],
  ['Travel tumbler', 27.5],
  ['Cold brew jar', 31.0],
  ['Scale with timer', 45.0],
  ['Descaler', 9.95],
];
const statuses = ['paid', 'paid', 'paid', 'shipped', 'shipped', 'delivered', 'delivered', 'delivered', 'refunded', 'cancelled'];

const quote = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
const lines = ['order_id,customer,email,country,product,quantity,unit_price,total,status,gift,ordered_at'];
const start = Date.UTC(2026, 0, 1);
for (let i = 1; i <= rows; i++) {
  const f = pick(first);
  const l = pick(last);
  const [product, price] = pick(products);
  const quantity = 1 + Math.floor(rand() * (rand() < 0.8 ? 3 : 12));
  const at = new Date(start + Math.floor(rand() * 330 * 86400) * 1000 + Math.floor(rand() * 86400000));
  const email = `${f}.${l}${i % 97}@example.com`.toLowerCase().normalize('NFD').replace(/[\u0300-\u036f]/g, '');
  lines.push(
    [100000 + i, quote(`${f} ${l}`), email, pick(countries), quote(product), quantity, price.toFixed(2), (price * quantity).toFixed(2), pick(statuses), rand() < 0.1 ? 'true' : 'false', at.toISOString()].join(','),
  );
}
writeFileSync(new URL('../examples/data/orders.csv', import.meta.url), `${lines.join('\n')}\n`);
console.log(`wrote ${rows} rows to examples/data/orders.csv`);
