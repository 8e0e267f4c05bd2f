/**
 * Every limit Parley enforces, in one place: sizes, rates, lifetimes.
 * Processes may override the tunable ones from their configuration; the
 * defaults here are what a deployment gets without saying anything.
 */
export const LIMITS = {
  name: { minLength: 6, maxLength: 32 },
  displayName: { maxLength: 64 },
  email: { maxLength: 254 },
  password: {
    minLength: 10,
    /** Argon2 would take longer ones, but a cap stops hashing megabytes on request. */
    maxLength: 128,
    /** At least this many different characters. */
    minDistinct: 5
  },
  /** HTTP bodies the login server accepts. */
  httpBodyBytes: 16 * 1024,
  /** Directory search. */
  search: { maxQueryLength: 64, defaultLimit: 20, maxLimit: 100 },
  credential: {
    /** Default lifetime of a credential. */
    lifetimeMs: 24 * 60 * 60 * 1000,
    /** The shortest and longest lifetime a server may be configured with. */
    minLifetimeMs: 10 * 1000,
    maxLifetimeMs: 30 * 24 * 60 * 60 * 1000,
    /** How far a verifier's clock may lag the issuer's. */
    clockSkewMs: 5 * 60 * 1000,
    /** Encoded credential size cap (it is ~170 bytes). */
    maxBytes: 512,
    maxKeyIdLength: 32
  },
  /** Signed requests (renew, logout, search): how old a request's timestamp may be. */
  requestProof: { maxAgeMs: 2 * 60 * 1000, maxHeaderLength: 2048 },
  login: {
    /** Failed logins per name allowed before delays start. */
    freeFailuresPerName: 10,
    /** Failed logins per client address allowed before delays start. */
    freeFailuresPerAddress: 50,
    /** The first delay once the free failures are spent; each further failure doubles it. */
    baseDelayMs: 30 * 1000,
    maxDelayMs: 60 * 60 * 1000,
    /** Failures older than this are forgotten. */
    windowMs: 60 * 60 * 1000
  },
  /** The partitioned database tier. */
  cluster: {
    /** Client connections pgBouncer accepts. */
    bouncerMaxClients: 2000,
    /** Server connections pgBouncer opens to the proxy database. */
    bouncerPoolSize: 20,
    /** A call that hit a partition mid-split (SQLSTATE PZ001) is retried this often. */
    movedRetries: 8
  },
  /** The overlay. */
  overlay: {
    /** A hello message (a credential and a little framing) is far below this. */
    helloMaxBytes: 4096,
    /** A peer that does not finish its hello in this time is refused. */
    helloTimeoutMs: 10_000,
    /** Open connections one node holds (a supernode: its clients, other supernodes, relayed peers). */
    maxConnections: 6_000,
    /** Supernodes dialled at once beyond those missing, when a node fills its links… */
    extraDialsPerWave: 2,
    /** …each started when the previous one failed or this long after it (Happy Eyeballs). */
    dialStaggerMs: 250,
    /** Connections being set up at once (Noise, yamux) on one node. */
    maxIncomingPendingConnections: 128,
    /** The keep-alive ping on every connection (a dead peer is found by it or by its socket closing). */
    keepAliveMs: 60_000,
    /** Connecting to another user's device (dial, hello, direct attempt, ping). */
    reachTimeoutMs: 15_000,
    /** A signed user record (credential, addresses, presence). */
    recordMaxBytes: 4096,
    /** The longest a user record may live; devices republish well before. */
    recordMaxTtlMs: 60 * 60 * 1000,
    /** Devices one user may have online in the directory at once. */
    devicesPerUser: 8,
    /** Records one supernode keeps in all. */
    recordsPerSupernode: 200_000,
    /** Supernodes a node remembers for lookups without a DHT walk. */
    knownSupernodes: 2000,
    /** Supernodes that keep each user's records (the closest in the DHT). */
    recordReplicas: 3,
    /** A records request or answer. */
    recordsMessageMaxBytes: 64 * 1024,
    recordsTimeoutMs: 5_000,
    /** Signing out waits this long at most for the device's withdrawal to reach its supernodes. */
    withdrawTimeoutMs: 5_000,
    /** A DHT walk for the supernodes closest to a user; then the supernodes already known answer. */
    walkTimeoutMs: 2_000,
    /** NAT and firewall determination (`/parley/nat/1.0.0` and STUN on supernodes). */
    nat: {
      /** A probe request or answer. */
      messageMaxBytes: 4096,
      /** Addresses a node may ask a supernode to dial back (only at the address the supernode sees). */
      dialBacks: 4,
      dialBackTimeoutMs: 3_000,
      probeTimeoutMs: 10_000,
      /** Supernodes asked per determination. */
      supernodesAsked: 3,
      /** A STUN message (RFC 5389 keeps them under the IPv4 minimum MTU). */
      stunMaxBytes: 548,
      stunTimeoutMs: 500,
      stunTries: 3,
      /** Probes one peer may make per minute on one supernode. */
      probesPerMinute: 6
    },
    /**
     * Circuit relay v2 on supernodes: sized for signalling and chat, not bulk
     * media (calls go peer to peer, or through TURN). libp2p's own defaults
     * (128 KiB, 2 minutes per relayed connection) cut chats short.
     */
    relay: {
      /** Peers behind NAT holding a reservation on one supernode. */
      maxReservations: 4096,
      reservationTtlMs: 2 * 60 * 60 * 1000,
      /** Per relayed connection, each way; then the connection is closed and may be opened again. */
      dataLimitBytes: 16 * 1024 * 1024,
      durationLimitMs: 60 * 60 * 1000,
      hopTimeoutMs: 30_000,
      /** Relay reservations a node behind NAT holds (one per linked supernode, up to this). */
      reservationsPerNode: 3
    },
    /** A node linked to no supernode at all tries again after 1 s, doubling up to this. */
    aloneRetryMaxMs: 30_000,
    /** A direct-connection attempt (`/parley/direct/1.0.0`) over a relayed connection. */
    direct: {
      messageMaxBytes: 4096,
      attemptTimeoutMs: 5_000,
      candidates: 8
    }
  },
  /**
   * The offline mailbox (`/parley/mailbox/1.0.0`): sealed items for a user's
   * devices, kept on the same supernodes as the user's records
   * (`overlay.recordReplicas` closest to the user's key).
   */
  mailbox: {
    /**
     * A sealed payload: a signed envelope at `messaging.envelopeMaxBytes`
     * (160 KiB) sealed to a device (49 bytes more) fits; voicemail comes in
     * several items.
     */
    sealedMaxBytes: 161 * 1024,
    /** A whole encoded item: the payload plus ids, names, the sender's credential, times and the signature (~730 bytes at most). */
    itemMaxBytes: 162 * 1024,
    /** An item id (base64url), chosen by the sender, unique among its items for one recipient device. */
    idMaxLength: 64,
    /** How long an item may wait for its recipient (`expiresAt - createdAt`). */
    itemMaxTtlMs: 30 * 24 * 60 * 60 * 1000,
    /** Items and bytes one sender (user) may keep for one recipient (user) on one supernode. */
    perRecipientItems: 500,
    perRecipientBytes: 8 * 1024 * 1024,
    /** Items and bytes one sender (user) may keep on one supernode in all. */
    perSenderItems: 5_000,
    perSenderBytes: 64 * 1024 * 1024,
    /** Items and bytes one supernode keeps in all; then it refuses with FULL. */
    supernodeItems: 500_000,
    supernodeBytes: 2 * 1024 * 1024 * 1024,
    /** Tombstones one recipient device may leave for items a supernode never held (deleted items always leave one). */
    tombstonesPerDevice: 10_000,
    /** Deposits one sender (user) may make on one supernode: a token bucket. */
    putsPerMinute: 120,
    putBurst: 60,
    /** Fetch and delete requests one peer may make on one supernode: a token bucket. */
    requestsPerMinute: 120,
    requestBurst: 60,
    /** A fetch answer: at most this many items and bytes (one item always fits). */
    fetchPageItems: 32,
    fetchPageBytes: 512 * 1024,
    /** Pages one collect reads from one supernode at most. */
    collectMaxPages: 256,
    /** Items one delete request names. */
    deleteMaxItems: 64,
    /** A request or answer frame (a fetch page with its framing is the largest). */
    messageMaxBytes: 520 * 1024,
    /** One request (dial, hello, the request and its answer). */
    requestTimeoutMs: 10_000,
    /** How often a supernode drops expired items and tombstones. */
    sweepEveryMs: 60_000,
    /**
     * A supernode tells a connected recipient device that an item waits
     * (`/parley/mailbox/waiting/1.0.0`) at most once per this gap (once more
     * after it when items kept coming); the device collects no more often
     * than this on such words.
     */
    waitingGapMs: 1_000,
    /** Devices a supernode keeps such a gap for at once (past it, no word: the device's own collect finds the item). */
    waitingTracked: 10_000,
    /** The word itself (a tiny JSON frame). */
    waitingMaxBytes: 64
  },
  /** The daemon's local API (loopback, one user's programs). */
  api: {
    /** Recent events kept for a client that reconnects with `?since=SEQ`. */
    eventRingLength: 1024,
    /** Live events an event-stream client may fall behind by before it is disconnected (close code 4008). */
    eventQueueLength: 256,
    /** Event-stream clients at once. */
    eventClients: 32,
    /** A message from an event-stream client (they only send pings); larger ones close the stream (1009). */
    eventClientMessageMaxBytes: 1024,
    /** A file of the web client the daemon serves (the bundle is well under this). */
    webFileMaxBytes: 8 * 1024 * 1024
  },
  /** The daemon's side of chat: outbox, delivery, the local API's chat routes. */
  chat: {
    /** How often the outbox is worked through; failed attempts back off (doubling) to outboxMaxBackoffMs. */
    outboxEveryMs: 2_000,
    outboxMaxBackoffMs: 60_000,
    /** Outbox entries tried per pass. */
    outboxBatch: 200,
    /** Finding and reaching a device, and its acknowledgement. */
    deliverTimeoutMs: 5_000,
    /** How often a device looks in its mailboxes (and at once when it starts). */
    collectEveryMs: 30_000,
    /** A user's devices are looked up in the directory again after this long (those seen before are used meanwhile). */
    devicesFreshMs: 60_000,
    devicesFreshEntries: 10_000,
    /** Envelopes a device takes from another device of its user when it catches up (a new device: recent history). */
    catchUpMax: 5_000,
    catchUpTimeoutMs: 30_000,
    /** A chat stream with nothing on it for this long is closed. */
    streamIdleMs: 30_000,
    /** Lines one history or search request returns at most. */
    historyMaxLimit: 1_000,
    /** The message that goes with a contact request. */
    requestMessageMaxLength: 500,
    /**
     * Envelopes a device takes from one other user (their devices together):
     * a burst, then a steady rate; more is refused with RATE_LIMITED, and the
     * sender's outbox tries again later. The user's own devices are not counted.
     */
    senderBurst: 5_000,
    senderPerMinute: 30_000,
    /** Contact requests from users who are not contacts: a few, then a few an hour (spam). */
    requestBurst: 20,
    requestsPerMinute: 1,
    /** Senders tracked at once (past it the oldest bucket is forgotten). */
    senderBuckets: 10_000
  },
  /** Presence between contacts. */
  presence: {
    messageMaxBytes: 1024,
    moodMaxLength: 140,
    /** Contacts' devices hear from an online device this often… */
    heartbeatMs: 10_000,
    /** …and take it for offline after this long without a word (or at once when its connection closes). */
    offlineAfterMs: 30_000,
    sweepMs: 2_000,
    pushTimeoutMs: 3_000,
    /** Online turns to away after this long without the user doing anything. */
    idleAwayMs: 10 * 60_000
  },
  /** Calls: signalling over `/parley/call/1.0.0` (media itself goes over WebRTC). */
  calls: {
    /** One signalling message (an SDP offer with audio, video and screen share is a few KiB). */
    signalMaxBytes: 32 * 1024,
    /** An SDP inside one. */
    sdpMaxBytes: 24 * 1024,
    /** A trickled ICE candidate line. */
    candidateMaxBytes: 1024,
    /** Signalling messages one call may carry each way (ICE candidates, renegotiations, hold, mute). */
    signalsPerCall: 500,
    /** Ringing without an answer turns into a missed call after this long. */
    noAnswerMs: 45_000,
    /** Reaching the callee's devices and hearing them ring. */
    inviteTimeoutMs: 10_000,
    /** Media connected after the answer, or the call fails. */
    connectTimeoutMs: 15_000,
    /** Calls at once on one device (ringing or connected); past it a new call gets `busy`. */
    maxCalls: 1,
    /** Incoming invites from one other user a minute (a ringing flood). */
    invitesPerMinute: 10,
    inviteBurst: 5,
    /** Length of a call from the command line, and of a recording. */
    maxSeconds: 3 * 60 * 60,
    /** Live quality figures are taken this often. */
    statsEveryMs: 1_000,
    /** Calls kept in the call history. */
    historyMax: 10_000,
    /** Participants in a conference this device hosts (each on its own call with the host). */
    conferenceMax: 8,
    /**
     * A conference participant's audio waiting to be mixed is trimmed to this, so that delay never builds up
     * past it (long enough to ride out a busy host's event loop without cutting speech).
     */
    mixBacklogMs: 500,
    /** Live audio passed from the web client's leg into a call (or back) starts after this much is queued (a jitter buffer). */
    bridgePrebufferMs: 60,
    /** More than this queued there (the pulling clock fell behind) and it drops back to the prebuffer. */
    bridgeMaxQueueMs: 200,
    /** The echo test contact records this much of a call, then plays it back. */
    echoRecordMs: 5_000,
    /** TURN credentials a supernode hands out live this long at most (never past the peer's own credential). */
    turnTtlSeconds: 3_600,
    /** TURN credentials one user may ask one supernode for. */
    turnAsksPerMinute: 30,
    turnAskBurst: 10,
    /** Audio in and out of calls (@parley/calls): what libwebrtc runs at, and WAV files played and recorded. */
    audio: {
      /** The rate everything inside runs at: Opus's and libwebrtc's. */
      sampleRate: 48_000,
      /** One frame handed to libwebrtc: 10 ms at 48 kHz. */
      frameSamples: 480,
      frameMs: 10,
      /** The longest audio read, written or recorded: a voicemail (3 minutes). */
      maxDurationMs: 3 * 60 * 1000,
      /** Sample rates a WAV file may have (telephone to studio; espeak-ng writes 22,050 Hz). */
      wavMinSampleRate: 8_000,
      wavMaxSampleRate: 96_000,
      /** Mono or stereo. */
      wavMaxChannels: 2,
      /** Bytes of chunks other than `fmt ` and `data` (LIST, fact, …) a WAV file may carry. */
      wavMaxOtherChunkBytes: 64 * 1024,
      /**
       * A whole WAV file: 3 minutes of 16-bit stereo at the highest rate, plus headers and
       * other chunks. Checked before parsing, so a file is refused before it is read whole.
       */
      wavMaxBytes: 44 + 64 * 1024 + ((3 * 60 * 1000) / 1000) * 96_000 * 2 * 2
    }
  },
  /** File transfer (`/parley/file/1.0.0`): offers, chunks, names. */
  files: {
    /** One chunk on the wire (each with its SHA-256): the unit a resumed transfer restarts from. */
    chunkBytes: 1024 * 1024,
    /** Files and folders' files in one offer. */
    maxFiles: 10_000,
    /** An offer message (the names, sizes and hashes of its files). */
    offerMaxBytes: 4 * 1024 * 1024,
    /** A control message other than an offer. */
    messageMaxBytes: 4 * 1024,
    /** One path in an offer (POSIX, relative), in UTF-8 bytes, and one of its parts. */
    pathMaxBytes: 4096,
    partMaxBytes: 255,
    /** A sender that sends nothing for this long has stalled: the stream is dropped (the transfer resumes later). */
    stallMs: 30_000,
    /** Accepted transfers not finished are tried again this often (a peer that went away, a restart). */
    retryEveryMs: 5_000,
    /** An attempt that moved bytes before its stream was cut (a relay's data limit) is tried again this soon. */
    retrySoonMs: 100,
    /**
     * An offer that reached none of the recipient's devices listed online (a
     * relayed connection cut at the relay's cap and being made again) is made
     * again this many times, this long apart, before the sender is told no.
     */
    offerAttempts: 3,
    offerRetryMs: 1_000,
    /** Sources whose chunk hashes (from the offer's hashing) a sender keeps in memory for its transfers. */
    chunkHashSources: 256,
    /** Chunks a sender may have in flight before the recipient says it wrote one (flow control, bounded memory). */
    windowChunks: 8,
    /** Transfers moving at once on one device (more wait their turn); chunks are interleaved between them. */
    concurrent: 4,
    /** Offers from one other user a minute, and at once. */
    offersPerMinute: 20,
    offerBurst: 10,
    /** Virus scanning through clamd (zINSTREAM): connecting to its unix socket or TCP port. */
    scanConnectMs: 5_000,
    /** clamd must take each piece of a stream within this, or it has stalled (the scan is tried again later). */
    scanStallMs: 30_000,
    /** clamd's verdict after the last piece (its own MaxScanTime is 120 s by default). */
    scanAnswerMs: 180_000,
    /** One zINSTREAM piece read from the file and written to clamd: memory stays at one piece whatever the size. */
    scanChunkBytes: 256 * 1024,
    /** clamd's answer (one line: `stream: OK`, `stream: NAME FOUND`, `... ERROR`). */
    scanAnswerMaxBytes: 4096,
    /** A signature name as a recipient reports it to the sender. */
    signatureMaxBytes: 256
  },
  /** Messaging (`@parley/messaging`): signed envelopes and what their bodies may hold. */
  messaging: {
    /** A chat line or an edit's new text, in UTF-8 bytes. */
    textMaxBytes: 64 * 1024,
    /**
     * One encoded envelope. A text at its limit fits even when every character
     * is one JSON writes as two bytes (`"`, `\`, newline, tab).
     */
    envelopeMaxBytes: 160 * 1024,
    /** Message ids one receipt acknowledges. */
    receiptMaxIds: 512,
    /** Members of one group, its creator included. */
    groupMaxMembers: 256,
    /** A group's name, in UTF-8 bytes. */
    groupNameMaxBytes: 256,
    /** A group's topic, in UTF-8 bytes. */
    topicMaxBytes: 1024,
    /** The note sent with a contact request, in UTF-8 bytes. */
    contactMessageMaxBytes: 1024,
    /** Entries in one list of a device-to-own-device sync (contacts). */
    syncMaxItems: 2048,
    /**
     * Voicemail travels as envelopes of kind `voicemail`, one part each: at
     * most this much audio data per part (base64url in the body, within the
     * envelope's limit), and this many parts: 3 minutes of 16 kHz IMA ADPCM
     * (1.44 MB) fit.
     */
    voicemailPartBytes: 96 * 1024,
    voicemailMaxParts: 16,
    /** Nesting of arrays and objects inside a body (the body itself is depth 1). */
    bodyMaxDepth: 8,
    /**
     * A Lamport clock ignores a time further ahead of its own than this: honest
     * devices advance one per message, so only a peer trying to run a
     * conversation's clock out (to 2^53) jumps that far.
     */
    lamportMaxJump: 2 ** 32
  },
  /** Per client address token buckets on the login server. */
  rates: {
    register: { perMinute: 30, burst: 30 },
    search: { perMinute: 120, burst: 60 },
    renew: { perMinute: 120, burst: 60 }
  }
} as const

export type Limits = typeof LIMITS
