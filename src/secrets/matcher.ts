/**
 * Finds registered secret values in a text: every encoding that output picks up on
 * the way (see {@link charPattern}), in any letter case, and a secret cut short.
 * The redactor replaces what this finds.
 *
 * Where a secret can be matched:
 * - **Whole**, anywhere — or, for a secret shorter than {@link SHORT_SECRET_LENGTH}
 *   characters, only as a whole token (not inside a longer word: with the password
 *   `exi`, "does not exist" stays readable).
 * - **Cut short** (a secret of {@link SHORT_SECRET_LENGTH} characters or more): any prefix
 *   of at least {@link PREFIX_LENGTH} characters, whatever follows it and whatever the
 *   secret's length; and a prefix of {@link CUT_PREFIX} to {@link PREFIX_LENGTH} characters
 *   where the text is cut right after it (end of text, a quote, `…`, `...`, a bracket).
 *
 * Cost: one Aho–Corasick pass over the text finds every place where a secret may start
 * (a run of letters or digits among its first characters, which every encoding keeps as
 * it is), and each candidate is checked character by character; so scrubbing stays
 * linear in the length of the output, with one secret or a thousand. Secrets that share
 * their first characters (many tokens with the same JWT header) share a candidate, which is
 * then checked against each of them: the cost grows with how many share it. A secret whose
 * first characters hold no such run (`"#$%&'()`) is searched for on its own.
 */
import { AhoCorasick, foldCase } from './aho-corasick.js';

/** Any prefix of a secret this long or longer is scrubbed, wherever it appears. */
export const PREFIX_LENGTH = 12;
/** Secrets shorter than this are matched only as whole tokens (and `weir validate` warns about them). */
export const SHORT_SECRET_LENGTH = 8;
/** A prefix this long is scrubbed where the text is cut right after it. */
export const CUT_PREFIX = 6;

/** base64 text inside a longer base64 run is matched from this many characters on. */
const MIN_BASE64_CORE = 8;
/** Shortest run of letters and digits worth an entry in the automaton. */
const MIN_ANCHOR = 3;
/** How far before an anchor the encoded form of one character may begin (`\\\\u0022`, `%25252F`, `&amp;amp;quot;`). */
const MAX_CHAR_WIDTH = 48;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const isAlnum = (ch: string) => /^[A-Za-z0-9]$/.test(ch);
const WORD = /[\p{L}\p{N}]/u;

const hexClass = (n: number, width: number) =>
  n
    .toString(16)
    .padStart(width, '0')
    .split('')
    .map((d) => (/[a-f]/.test(d) ? `[${d}${d.toUpperCase()}]` : d))
    .join('');

const NAMED_ENTITIES: Record<string, string> = { '"': 'quot', '&': 'amp', '<': 'lt', '>': 'gt', "'": 'apos', '\u00a0': 'nbsp' };
const CONTROL_ESCAPES: Record<string, string> = { '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f' };
// escaping backslashes in front of a character, raw or URL-encoded (JSON inside JSON, \/ …)
const BACKSLASHES = '(?:\\\\|%(?:25)*5[Cc])*';

/**
 * A pattern for one character of a secret in any of the encodings that output picks up
 * along the way, nested to any depth: raw; percent-encoded (UTF-8 bytes, either case,
 * re-encoded `%252F`); `+` for a space; JSON `\"`, `\\`, `\n`, `\u0022` behind any number
 * of backslashes; HTML named or numeric entities, re-escaped (`&amp;quot;`). Letters and
 * digits only ever appear as themselves.
 */
function charPattern(ch: string): string {
  if (isAlnum(ch)) return ch;
  const cp = ch.codePointAt(0) as number;
  const alts = [escapeRegExp(ch)];
  alts.push([...Buffer.from(ch)].map((b) => `%(?:25)*${hexClass(b, 2)}`).join(''));
  const units = cp > 0xffff ? [ch.charCodeAt(0), ch.charCodeAt(1)] : [cp];
  alts.push(units.map((u) => `u${hexClass(u, 4)}`).join('\\\\+'));
  alts.push(`&(?:amp;)*#(?:0*${cp}|[xX]0*${hexClass(cp, 1)});`);
  if (NAMED_ENTITIES[ch]) alts.push(`&(?:amp;)*${NAMED_ENTITIES[ch]};`);
  if (CONTROL_ESCAPES[ch]) alts.push(CONTROL_ESCAPES[ch] as string);
  if (ch === ' ') alts.push('\\+');
  return `${BACKSLASHES}(?:${alts.join('|')})`;
}

/** Where a value cut short (a sample capped at N characters, an ellipsis) ends. */
const CUT_END = /(?:%(?:25)*[0-9A-Fa-f]?|\\*u[0-9A-Fa-f]{0,3}|&[#A-Za-z0-9]*|\\+$)?(?=$|\\*["'\r\n]|\\+n|…|\.\.\.|\s*[)\]}])/y;

/** Sticky, case-insensitive matchers of one character's encodings, shared by all secrets. */
const charMatchers = new Map<string, RegExp>();
function charMatcher(ch: string): RegExp {
  let re = charMatchers.get(ch);
  if (!re) {
    re = new RegExp(charPattern(ch), 'iy');
    charMatchers.set(ch, re);
  }
  return re;
}

/** base64 forms of a secret, also inside a longer base64 text (base64("user:" + secret) in a Basic header), at each of the 3 alignments. */
function base64Forms(value: string, cores: boolean): string[] {
  const bytes = Buffer.from(value);
  const forms = new Set<string>([bytes.toString('base64'), bytes.toString('base64url')]);
  for (let offset = 0; cores && offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const core = encoded.slice(offset === 0 ? 0 : 4, Math.floor((offset + bytes.length) / 3) * 4);
    if (core.length >= MIN_BASE64_CORE) {
      forms.add(core);
      forms.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  return [...forms];
}

interface Secret {
  chars: string[];
  /** Folded letters and digits by position (undefined: another character, matched by its pattern). */
  folded: (string | undefined)[];
  short: boolean;
  /** Whether it has characters other than letters and digits (whose encodings may need backtracking). */
  encoded: boolean;
  /** Full pattern, for the rare secret whose greedy walk fails where backtracking would not (`\\\\`); built on first use. */
  full?: RegExp;
  /** Positions below this were tried as starts already. */
  triedTo: number;
}

/** An entry of the automaton: where a secret may start, or a literal form (base64). */
type Anchor = { secret: Secret; offset: number; length: number } | { literal: string; short: boolean };

/** The characters of a secret that every match contains: its first ones, or all of a short one. */
const headLength = (chars: readonly string[]) => (chars.length < SHORT_SECRET_LENGTH ? chars.length : CUT_PREFIX);

/** The longest run of letters and digits among a secret's first characters. */
function anchorOf(chars: readonly string[]): { offset: number; text: string } | undefined {
  let best: { offset: number; text: string } | undefined;
  let start = 0;
  const head = headLength(chars);
  for (let i = 0; i <= head; i++) {
    if (i < head && isAlnum(chars[i] as string)) continue;
    if (i - start >= MIN_ANCHOR && (!best || i - start > best.text.length)) best = { offset: start, text: chars.slice(start, i).join('') };
    start = i + 1;
  }
  return best;
}

export class SecretMatcher {
  private readonly secrets: Secret[] = [];
  private readonly anchors: Anchor[] = [];
  /** Secrets without an anchor: searched for from every position their first character allows. */
  private readonly unanchored: { secret: Secret; first: RegExp }[] = [];
  private readonly automaton: AhoCorasick;

  constructor(values: Iterable<string>) {
    const needles: string[] = [];
    for (const value of values) {
      const chars = [...value];
      const secret: Secret = {
        chars,
        folded: chars.map((c) => (isAlnum(c) ? c.toLowerCase() : undefined)),
        short: chars.length < SHORT_SECRET_LENGTH,
        encoded: chars.some((c) => !isAlnum(c)),
        triedTo: 0,
      };
      this.secrets.push(secret);
      const anchor = anchorOf(chars);
      if (anchor) {
        needles.push(anchor.text.toLowerCase());
        this.anchors.push({ secret, offset: anchor.offset, length: anchor.text.length });
      } else this.unanchored.push({ secret, first: new RegExp(charPattern(chars[0] as string), 'gi') });
      for (const literal of base64Forms(value, !secret.short)) {
        if (literal === value) continue;
        needles.push(foldCase(literal));
        this.anchors.push({ literal, short: secret.short });
      }
    }
    this.automaton = new AhoCorasick(needles);
  }

  /** Every match as [start, end) ranges, sorted and merged. */
  find(text: string): [number, number][] {
    for (const s of this.secrets) s.triedTo = 0;
    const folded = foldCase(text);
    const found: [number, number][] = [];
    for (const hit of this.automaton.search(folded)) {
      const anchor = this.anchors[hit.needle] as Anchor;
      if ('literal' in anchor) {
        const start = hit.end - anchor.literal.length;
        if (text.startsWith(anchor.literal, start) && (!anchor.short || isToken(text, start, hit.end))) found.push([start, hit.end]);
        continue;
      }
      const at = hit.end - anchor.length;
      const { secret } = anchor;
      const from = Math.max(secret.triedTo, anchor.offset === 0 ? at : at - anchor.offset * MAX_CHAR_WIDTH);
      for (let pos = from; pos <= at; pos++) {
        const end = this.matchAt(secret, text, folded, pos);
        if (end > pos) found.push([pos, end]);
      }
      secret.triedTo = Math.max(secret.triedTo, at + 1);
    }
    for (const { secret, first } of this.unanchored) {
      first.lastIndex = 0;
      for (let m = first.exec(text); m; m = first.exec(text)) {
        const end = this.matchAt(secret, text, folded, m.index);
        if (end > m.index) found.push([m.index, end]);
        first.lastIndex = m.index + 1;
      }
    }
    return merge(found);
  }

  /** Where a match of the secret starting at `pos` ends, or -1. */
  private matchAt(secret: Secret, text: string, folded: string, pos: number): number {
    const { chars } = secret;
    let p = pos;
    let k = 0;
    for (; k < chars.length; k++) {
      const f = secret.folded[k];
      if (f !== undefined) {
        if (folded[p] !== f) break;
        p++;
        continue;
      }
      const re = charMatcher(chars[k] as string);
      re.lastIndex = p;
      if (!re.test(text)) break;
      p = re.lastIndex;
    }
    if (k < chars.length && k > 0 && secret.encoded) {
      secret.full ??= new RegExp(chars.map(charPattern).join(''), 'iy');
      secret.full.lastIndex = pos;
      if (secret.full.test(text)) {
        p = secret.full.lastIndex;
        k = chars.length;
      }
    }
    if (k === chars.length) return !secret.short || isToken(text, pos, p) ? p : -1;
    if (secret.short || k < CUT_PREFIX) return -1;
    CUT_END.lastIndex = p;
    // where the text is cut, also the cut character's partial encoding (`%2`, `\u00`)
    if (CUT_END.test(text)) return CUT_END.lastIndex;
    return k >= PREFIX_LENGTH ? p : -1;
  }
}

/** Whether text[start, end) is a whole token: no letter or digit right before or after it. */
function isToken(text: string, start: number, end: number): boolean {
  return !WORD.test(text.charAt(start - 1)) && !WORD.test(text.charAt(end));
}

function merge(ranges: [number, number][]): [number, number][] {
  ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const out: [number, number][] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}
