export {
  type BodyOf,
  type ContactAction,
  type ContactBody,
  type DeleteBody,
  type EditBody,
  type GroupAction,
  type GroupBody,
  isKind,
  KINDS,
  type Kind,
  type ReceiptBody,
  type ReceiptState,
  type SyncBody,
  type SyncContact,
  type TextBody,
  type TypingBody,
  utf8Length,
  type VoicemailBody
} from './bodies.ts'
export { canonicalJson } from './canonical-json.ts'
export * from './conversation.ts'
export * from './envelope.ts'
export * from './errors.ts'
export * from './ids.ts'
export * from './lamport.ts'
export { publicKeyOfPeerId } from './peer-key.ts'
export * from './seal.ts'
export * from './shortcodes.ts'
