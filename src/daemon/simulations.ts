/**
 * Saved simulations (slicectl simulate --save NAME): the documents `slicectl simulate`
 * prints, kept in the state directory's simulations/ (root only), one NAME.json each, written
 * whole or not at all (writeFileWhole, as the embedded store's snapshot). Their charts are drawn from the
 * document when asked for, by the simulator's own chart code.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SlicedError } from '../core/errors.js';
import { assertValidName } from '../core/names.js';
import { parseInput } from '../core/model.js';
import { simulationDocumentSchema } from '../core/simulations.js';
import { writeFileWhole } from '../cluster/store-files.js';
import { chartNames, resultChart } from '../sim/charts.js';
import type { SavedSimulation, SimulationDocument, SimulationEntry } from '../wire/simulations.js';

/** Saved runs kept at most: an operator deletes old ones to save more. */
export const MAX_SAVED_SIMULATIONS = 100;
const SUFFIX = '.json';

interface StoredFile {
  name: string;
  savedAt: string;
  document: SimulationDocument;
}

export class SimulationStore {
  private readonly dir: string;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.dir = join(stateDir, 'simulations');
  }

  async list(): Promise<SimulationEntry[]> {
    const names = (await this.fileNames()).sort();
    const entries: SimulationEntry[] = [];
    for (const name of names) {
      try {
        entries.push(entryOf(await this.read(name)));
      } catch (err) {
        this.log.warn({ name, err: (err as Error).message }, 'saved simulation unreadable: left out of the list');
      }
    }
    return entries;
  }

  async get(name: string): Promise<SavedSimulation> {
    const stored = await this.read(assertValidName('simulation', name));
    return { ...entryOf(stored), document: stored.document };
  }

  /** One chart's SVG (a name of the entry's `charts`). */
  async chart(name: string, chart: string): Promise<string> {
    const { document } = await this.read(assertValidName('simulation', name));
    const svg = resultChart(document.results, chart);
    if (svg === undefined)
      throw new SlicedError(
        'ENOENT',
        `simulation ${name} has no chart ${JSON.stringify(chart)}; it has ${chartNames(document.results).join(', ')}`,
      );
    return svg;
  }

  /** Save (or replace) a run; the document is checked here, whoever sent it. */
  async save(name: string, input: unknown): Promise<{ entry: SimulationEntry; replaced: boolean }> {
    assertValidName('simulation', name);
    const document = parseInput(simulationDocumentSchema, input, 'simulation');
    const existing = await this.fileNames();
    const replaced = existing.includes(name);
    if (!replaced && existing.length >= MAX_SAVED_SIMULATIONS)
      throw new SlicedError(
        'ENOSPC',
        `${existing.length} simulations are saved, the most kept; delete one first (slicectl simulation delete NAME)`,
      );
    const stored: StoredFile = { name, savedAt: new Date().toISOString(), document };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // The temporary file starts with "." and is never a name (names start with a letter or digit).
    await writeFileWhole(join(this.dir, `.${name}${SUFFIX}.new`), this.file(name), JSON.stringify(stored));
    return { entry: entryOf(stored), replaced };
  }

  async delete(name: string): Promise<void> {
    assertValidName('simulation', name);
    if (!(await this.fileNames()).includes(name)) throw notSaved(name);
    await rm(this.file(name), { force: true });
  }

  private file(name: string): string {
    return join(this.dir, name + SUFFIX);
  }

  private async fileNames(): Promise<string[]> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    // Temporary files start with "." and are never a name (names start with a letter or digit).
    return files.filter((f) => f.endsWith(SUFFIX) && !f.startsWith('.')).map((f) => f.slice(0, -SUFFIX.length));
  }

  private async read(name: string): Promise<StoredFile> {
    let text: string;
    try {
      text = await readFile(this.file(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notSaved(name);
      throw err;
    }
    try {
      const stored = JSON.parse(text) as StoredFile;
      return { name, savedAt: String(stored.savedAt), document: parseInput(simulationDocumentSchema, stored.document, 'saved simulation') };
    } catch (err) {
      throw new SlicedError('EIO', `saved simulation ${name} (${this.file(name)}) cannot be read: ${(err as Error).message}`);
    }
  }
}

function notSaved(name: string): SlicedError {
  return new SlicedError('ENOENT', `no saved simulation ${JSON.stringify(name)} (slicectl simulation list shows them)`);
}

function entryOf({ name, savedAt, document }: StoredFile): SimulationEntry {
  return {
    name,
    savedAt,
    workload: document.workload,
    seed: document.seed,
    nodes: document.results[0]?.nodes ?? null,
    policies: document.results.map((r) => r.label),
    charts: chartNames(document.results),
  };
}
