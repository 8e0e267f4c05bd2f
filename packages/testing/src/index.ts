export * from './bench.ts'
export * from './db-contract.ts'
export * from './postgres.ts'
export * from './process.ts'
