export { Profile } from '@parley/node/profile'
export { COMMANDS, main } from './main.ts'
