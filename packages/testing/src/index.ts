export * from './postgres.ts'
export * from './process.ts'
