import { createVideoSink, createVideoSource, type MediaTrack, type VideoFrame, type VideoSink, type VideoSource } from './wrtc.ts'

/**
 * Headless video (a camera or a shared screen for bots and tests): a moving
 * test pattern pushed into a libwebrtc video source at a steady frame rate.
 * libwebrtc encodes it (VP8) like any camera.
 */
export class VideoPattern {
  readonly source: VideoSource
  readonly track: MediaTrack
  readonly #frame: VideoFrame
  #timer: NodeJS.Timeout | undefined
  #n = 0

  constructor(init: { width?: number; height?: number; fps?: number; screen?: boolean } = {}) {
    const width = init.width ?? 320
    const height = init.height ?? 240
    this.source = createVideoSource({ isScreencast: init.screen === true })
    this.track = this.source.createTrack()
    this.#frame = { width, height, data: new Uint8ClampedArray((width * height * 3) / 2) }
    this.#timer = setInterval(() => this.#push(), 1000 / (init.fps ?? 15))
    this.#push()
  }

  #push(): void {
    const { width, height, data } = this.#frame
    // A bar that moves across a grey field, so every frame differs.
    data.fill(128)
    const x = (this.#n++ * 8) % width
    for (let y = 0; y < height; y++) data.fill(235, y * width + x, y * width + Math.min(width, x + 16))
    this.source.onFrame(this.#frame)
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.track.stop()
  }
}

/** Counts the frames of a remote video track (what a headless side "sees"). */
export class VideoCounter {
  readonly sink: VideoSink
  readonly track: MediaTrack
  frames = 0
  width = 0
  height = 0

  constructor(track: MediaTrack) {
    this.track = track
    this.sink = createVideoSink(track)
    this.sink.onframe = ({ frame }) => {
      this.frames++
      this.width = frame.width
      this.height = frame.height
    }
  }

  stop(): void {
    this.sink.onframe = null
    this.sink.stop()
  }
}
