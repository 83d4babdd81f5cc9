import { SlicedError } from './errors.js';

export const NAME_MAX_LENGTH = 64;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Why a name from outside is unacceptable, or null when it is fine. Names become directory
 * names in cgroup hierarchies and state files, so anything that could escape a directory
 * ("/", "..", NUL) or look like an option or hidden file is refused.
 */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'must be a string';
  if (name.length === 0) return 'must not be empty';
  if (name.includes('\0')) return 'must not contain NUL';
  if (name.includes('/')) return 'must not contain "/"';
  if (name.includes('..')) return 'must not contain ".."';
  if (name.length > NAME_MAX_LENGTH) return `is ${name.length} characters long; at most ${NAME_MAX_LENGTH} are allowed`;
  if (!NAME_PATTERN.test(name)) {
    return 'may use only letters, digits, "_", "." and "-", and must start with a letter or digit';
  }
  return null;
}

export function assertValidName(kind: string, name: unknown): string {
  const problem = nameProblem(name);
  if (problem !== null) {
    throw new SlicedError('EINVAL', `${kind} name ${JSON.stringify(name)} ${problem}`);
  }
  return name as string;
}
