/** `slicectl web`: where this node's dashboard is and a link that signs in (the token is in it: root and the admin group only). */
import type { Command } from 'commander';
import type { ApiClient } from './client.js';
import type { WebInfo } from '../wire/web.js';

export interface WebCliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

export function registerWebCommands(program: Command, ctx: WebCliContext): void {
  program
    .command('web')
    .description("the dashboard's address, its token file, and a link that signs in (keep it private: it carries the token)")
    .action(async (_options: unknown, command: Command) => {
      const info = await ctx.client(command).get<WebInfo>('/v1/web');
      ctx.print(command, info, () =>
        [
          `Dashboard:   ${info.url}`,
          `Token file:  ${info.tokenFile}`,
          `Sign-in link: ${info.signInUrl}`,
          ...(info.clientCa ? [`Client certificates signed by ${info.clientCa} sign in without the token`] : []),
        ].join('\n'),
      );
    });
}
