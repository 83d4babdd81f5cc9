/**
 * How `slicectl exec` wires a command's standard streams. A slice's process must never hold
 * a descriptor of the caller's terminal: it could read what root types next, change its
 * modes, or (as the terminal's session member) inject keystrokes with TIOCSTI. So every
 * standard stream that is a terminal is replaced by a new pseudo-terminal that slicectl
 * relays (as `sudo --pty` does); streams that are files or pipes are passed as they are.
 */

/** Which of stdin, stdout and stderr are terminals. */
export type TerminalStreams = readonly [stdin: boolean, stdout: boolean, stderr: boolean];

export interface TerminalPlan {
  /** Keyboard input is relayed to the pseudo-terminal (stdin is a terminal). */
  input: boolean;
  /**
   * Where the pseudo-terminal's output is shown: on stdout or stderr when that is a
   * terminal, else on the terminal of stdin (reopened for writing, so typed characters echo).
   */
  output: 'stdout' | 'stderr' | 'stdin';
  /** Streams (0, 1, 2) that are not terminals and are passed to the command unchanged. */
  passThrough: number[];
}

/** The wiring for these streams, or null when none is a terminal (plain pipes and files). */
export function terminalPlan(streams: TerminalStreams): TerminalPlan | null {
  if (!streams.some(Boolean)) return null;
  const [stdin, stdout, stderr] = streams;
  return {
    input: stdin,
    output: stdout ? 'stdout' : stderr ? 'stderr' : 'stdin',
    passThrough: [0, 1, 2].filter((fd) => !streams[fd]),
  };
}

/** One word for a POSIX shell, whatever it holds. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Shell lines that restore the passed-through streams inside the pseudo-terminal's session:
 * stream N arrives as descriptor 3+N and replaces the pseudo-terminal there.
 */
export function restoreStreams(passThrough: readonly number[]): string {
  return passThrough.map((fd) => `exec ${fd}${fd === 0 ? '<' : '>'}&${fd + 3} ${fd + 3}>&-`).join('\n');
}
