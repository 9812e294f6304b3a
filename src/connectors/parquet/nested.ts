/**
 * Nested columns (structs, lists, maps) read a slice of records at a time:
 * every leaf's column chunk is streamed by the page reader (levels and values,
 * a page at a time), and each slice's records are put together by hyparquet's
 * Dremel assembly (`assembleLists` per leaf, `assembleNested` for the column),
 * the same functions hyparquet applies to a whole row group. So memory follows
 * the slice, not the row group (a million lists in one group took 1.8 GB as a
 * whole). Leaf values are converted by weir as the flat columns' are: decimals,
 * big integers, timestamps exact. Runs on workers, once per nested column per
 * row group read.
 */
import type { ParquetParsers, RowGroup, SchemaTree } from 'hyparquet';
import { assembleLists, assembleNested } from 'hyparquet/src/assemble.js';
import { DEFAULT_PARSERS } from 'hyparquet/src/convert.js';
import { getMaxDefinitionLevel, getMaxRepetitionLevel } from 'hyparquet/src/schema.js';
import { Corrupt } from './corrupt.js';
import { ColumnChunkReader, PageBuffers, type ReadBytes } from './pages.js';
import { jsonValue, leavesOf, NESTED_PARSERS, physicalLeaf, type SourceColumn } from './read-values.js';

const PARSERS: ParquetParsers = { ...DEFAULT_PARSERS, ...NESTED_PARSERS };

interface LeafStream {
  /** The leaf's path joined by dots: how assembleNested names it. */
  path: string;
  /** The schema nodes from the root to the leaf. */
  schemaPath: SchemaTree[];
  maxDef: number;
  maxRep: number;
  reader: ColumnChunkReader;
}

/** The schema nodes from `root` down to `leaf`. */
function pathTo(root: SchemaTree, leaf: SchemaTree): SchemaTree[] {
  const out = [root];
  let node = root;
  for (const name of leaf.path) {
    node = node.children.find((c) => c.element.name === name) as SchemaTree;
    out.push(node);
  }
  return out;
}

/** Reads one nested column of one row group, `take(n)` records at a time. */
export class NestedColumnReader {
  private readonly leaves: LeafStream[];

  /** `buffers` holds one set of page buffers per leaf, reused from row group to row group. */
  constructor(
    read: ReadBytes,
    rowGroup: RowGroup,
    root: SchemaTree,
    private readonly column: SourceColumn,
    buffers: PageBuffers[],
  ) {
    this.leaves = leavesOf(column.node).map((node, i) => {
      const path = node.path.join('.');
      const meta = rowGroup.columns.find((c) => c.meta_data?.path_in_schema.join('.') === path)?.meta_data;
      if (!meta) throw new Corrupt(`the row group has no column chunk for "${path}"`);
      const schemaPath = pathTo(root, node);
      const maxDef = getMaxDefinitionLevel(schemaPath);
      const maxRep = getMaxRepetitionLevel(schemaPath);
      const { text = false, convert } = physicalLeaf(node.element);
      buffers[i] ??= new PageBuffers();
      const leaf = { name: path, element: node.element, maxDef, maxRep, text, convert };
      return { path, schemaPath, maxDef, maxRep, reader: new ColumnChunkReader(read, meta, leaf, buffers[i]) };
    });
  }

  /** The next `n` values of the column as weir JSON values (null for a null struct, list or map). */
  async take(n: number): Promise<unknown[]> {
    const slices = await Promise.all(this.leaves.map((l) => l.reader.takeRecords(n)));
    // hyparquet's assembly trusts the leaves to agree: one that ended early is a lie of its pages
    slices.forEach((slice, i) => {
      if (slice.records < n) throw new Corrupt(`column "${this.leaves[i]?.path}" holds fewer records than its row group claims rows`);
    });
    const data = new Map<string, unknown[]>();
    this.leaves.forEach((leaf, i) => {
      const { rep, def, values } = slices[i] as (typeof slices)[number];
      data.set(leaf.path, assembleLists([], leaf.maxDef ? def : undefined, leaf.maxRep ? rep : [], values, leaf.schemaPath) as unknown[]);
    });
    assembleNested(data, this.column.node, PARSERS);
    const assembled = (data.get(this.column.name) ?? []) as unknown[];
    if (assembled.length < n) throw new Corrupt(`column "${this.column.name}" holds fewer records than its row group claims rows`);
    return assembled.map((v) => (v === null || v === undefined ? null : jsonValue(v)));
  }

  /** Once the row group's records were taken: every leaf's pages held no more (see {@link ColumnChunkReader.finish}). */
  async finish(): Promise<void> {
    await Promise.all(this.leaves.map((l) => l.reader.finish()));
  }

  /** Checks every leaf's pages whole (see {@link ColumnChunkReader.checkAll}): for a column hyparquet decodes. */
  async checkPages(rows: number): Promise<void> {
    for (const leaf of this.leaves) await leaf.reader.checkAll(rows);
  }

  /** Passes over the next `n` records. */
  async skip(n: number): Promise<void> {
    await Promise.all(this.leaves.map((l) => l.reader.takeRecords(n)));
  }
}
