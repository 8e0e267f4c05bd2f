export * from './hello/hello.ts'
export * from './node.ts'
export * from './overlay/libp2p.ts'
