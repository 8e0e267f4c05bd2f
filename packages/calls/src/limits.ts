/**
 * The limits of this package, in the shape `@parley/protocol`'s `LIMITS`
 * uses (they are to move there, under `calls`).
 */
export const LIMITS = {
  calls: {
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
  }
} as const
