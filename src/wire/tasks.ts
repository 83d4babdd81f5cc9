/** The tasks API (`/v1/tasks`): what slicectl run and slicectl task send and read. */
export type { TaskView, TaskRequest, RestartPolicy, LogLine } from '../core/tasks.js';
import type { TaskView } from '../core/tasks.js';

export interface TaskList {
  tasks: TaskView[];
}
