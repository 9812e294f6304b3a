/** What the tests of the encoded fast paths read encoded data with. */

/**
 * Reads `data` as PostgreSQL's COPY (FORMAT csv) does, strictly: records end with
 * the first line's ending (LF or CRLF) throughout, a field is quoted whole or not
 * at all, unquoted `nullText` is NULL, a line `\.` would end the data (an error
 * here). Anything PostgreSQL would read differently or refuse throws.
 */
export function readAsCopy(data: Buffer, d: string, q: string, nullText: string): (string | null)[][] {
  const text = data.toString('utf8');
  const records: (string | null)[][] = [];
  let crlf: boolean | undefined;
  let i = 0;
  while (i < text.length) {
    const lineStart = i;
    const record: (string | null)[] = [];
    for (;;) {
      let value: string | null;
      if (text[i] === q) {
        let v = '';
        i++;
        for (;;) {
          if (i >= text.length) throw new Error(`unterminated quoted field at ${i}`);
          if (text[i] === q) {
            if (text[i + 1] === q) {
              v += q;
              i += 2;
              continue;
            }
            i++;
            break;
          }
          v += text[i++];
        }
        value = v;
      } else {
        let v = '';
        while (i < text.length && text[i] !== d && text[i] !== '\n' && text[i] !== '\r') {
          if (text[i] === q) throw new Error(`quote inside an unquoted field at ${i}: ${JSON.stringify(text.slice(lineStart, i + 5))}`);
          v += text[i++];
        }
        value = v === nullText ? null : v;
      }
      record.push(value);
      if (text[i] === d) {
        i++;
        continue;
      }
      if (text[i] === '\r') {
        if (text[i + 1] !== '\n') throw new Error(`bare CR at ${i}`);
        if (crlf === false) throw new Error(`CRLF in an LF file at ${i}`);
        crlf = true;
        i += 2;
      } else if (text[i] === '\n') {
        if (crlf === true) throw new Error(`LF in a CRLF file at ${i}`);
        crlf = false;
        i++;
      } else throw new Error(`record without a line ending at ${i}: ${JSON.stringify(text.slice(lineStart, i))}`);
      break;
    }
    if (text.slice(lineStart, i).replace(/\r?\n$/, '') === '\\.') throw new Error('a line \\. would end the COPY');
    records.push(record);
  }
  return records;
}
