export * from './bench.ts'
export * from './postgres.ts'
export * from './process.ts'
