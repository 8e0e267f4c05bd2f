import { ParleyError } from '@parley/protocol'
import type { Command } from '../context.ts'

/** Commands in CONTRACT.md whose features are not built yet: each says so, clearly, with exit 1. */
const PLANNED: Array<[string[], string, string]> = [
  [['up'], 'parley up [--data DIR] [--users a,b]', 'starts a whole network on this machine']
]

export const notBuilt: Command[] = PLANNED.map(([path, usage, summary]) => ({
  path,
  usage,
  summary: `${summary} (not built yet)`,
  options: {},
  positionals: [0, 100] as [number, number],
  async run() {
    throw new ParleyError('NOT_IMPLEMENTED', `"parley ${path.join(' ')}" is not built yet in this version of Parley`)
  }
}))
