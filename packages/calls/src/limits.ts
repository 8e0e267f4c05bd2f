/**
 * This package's limits live with all the others, in `@parley/protocol`'s
 * `LIMITS` (under `calls.audio`): re-exported here for the package's modules.
 */
export { LIMITS } from '@parley/protocol'
