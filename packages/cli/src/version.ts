/** This client's version, sent with the start-up version check. */
export const CLIENT_VERSION = '0.1.0'
