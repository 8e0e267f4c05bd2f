export { COMMANDS, main } from './main.ts'
export { Profile } from './profile.ts'
