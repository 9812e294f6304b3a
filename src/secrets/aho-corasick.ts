/**
 * Aho–Corasick multi-string search: every occurrence of any of many needles in one
 * pass over the text, in time linear in the text's length plus the number of hits,
 * however many needles there are. The redactor uses it to find where a registered
 * secret may start, so scrubbing costs the same with one secret or a thousand.
 *
 * Written here because no maintained implementation is installed (the project takes no
 * new dependency without review); it is small and property-tested against a naive search.
 *
 * Matching is by UTF-16 code unit; callers that want case-insensitive matching fold
 * the needles and the text with {@link foldCase}, which keeps every index in place.
 *
 * @example
 * const ac = new AhoCorasick(['he', 'she', 'hers']);
 * ac.search('ushers'); // [{ end: 4, needle: 1 }, { end: 4, needle: 0 }, { end: 6, needle: 2 }]
 */
export interface Hit {
  /** Index just past the last code unit of the occurrence. */
  end: number;
  /** Index of the needle in the constructor's list. */
  needle: number;
}

interface Node {
  next: Map<number, number>;
  fail: number;
  /** Needles ending at this node. */
  out: number[];
  /** The nearest node on the fail chain that ends a needle (-1: none). */
  dict: number;
}

export class AhoCorasick {
  private readonly nodes: Node[] = [{ next: new Map(), fail: 0, out: [], dict: -1 }];

  constructor(needles: readonly string[]) {
    needles.forEach((needle, index) => {
      if (needle.length > 0) this.nodeOf(needle).out.push(index);
    });
    this.link();
  }

  private nodeOf(needle: string): Node {
    let at = 0;
    for (let i = 0; i < needle.length; i++) {
      const c = needle.charCodeAt(i);
      let to = this.nodes[at]?.next.get(c);
      if (to === undefined) {
        to = this.nodes.length;
        this.nodes.push({ next: new Map(), fail: 0, out: [], dict: -1 });
        this.nodes[at]?.next.set(c, to);
      }
      at = to;
    }
    return this.nodes[at] as Node;
  }

  /** Failure and dictionary links, breadth first. */
  private link(): void {
    const queue: number[] = [...(this.nodes[0] as Node).next.values()];
    for (let q = 0; q < queue.length; q++) {
      const node = this.nodes[queue[q] as number] as Node;
      for (const [c, child] of node.next) {
        let f = node.fail;
        while (f !== 0 && !this.nodes[f]?.next.has(c)) f = (this.nodes[f] as Node).fail;
        const target = this.nodes[f]?.next.get(c);
        const childNode = this.nodes[child] as Node;
        childNode.fail = target !== undefined && target !== child ? target : 0;
        const failNode = this.nodes[childNode.fail] as Node;
        childNode.dict = failNode.out.length > 0 ? childNode.fail : failNode.dict;
        queue.push(child);
      }
    }
  }

  /** Every occurrence of every needle, in order of their end. */
  search(text: string): Hit[] {
    const hits: Hit[] = [];
    let at = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let node = this.nodes[at] as Node;
      while (at !== 0 && !node.next.has(c)) {
        at = node.fail;
        node = this.nodes[at] as Node;
      }
      at = node.next.get(c) ?? 0;
      for (let d = at; d > 0; d = (this.nodes[d] as Node).dict) {
        const out = (this.nodes[d] as Node).out;
        for (const needle of out) hits.push({ end: i + 1, needle });
      }
    }
    return hits;
  }
}

/**
 * Lower-cases a text without moving any index: a character whose lower case has
 * another length (`İ`) stays as it is. ASCII-only text takes a fast path.
 */
export function foldCase(text: string): string {
  if (/^[\u0000-\u007f]*$/.test(text)) return text.toLowerCase();
  return text.replace(/[^\u0000-\u0040\u005b-\u0060\u007b-\u007f]/g, (c) => {
    const lower = c.toLowerCase();
    return lower.length === c.length ? lower : c;
  });
}
