// audio-worklet.js - runs in the AudioWorklet: hands the microphone's samples
// (mono: channels averaged) to the page in pieces of about 100 ms, at the
// AudioContext's rate (16 kHz where the browser resamples for us).
class G3nCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.max(128, Math.round(sampleRate / 10));
    this.buffer = new Float32Array(this.size);
    this.fill = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) {
      const channels = input.length;
      const frames = input[0].length;
      for (let i = 0; i < frames; i++) {
        let v = 0;
        for (let c = 0; c < channels; c++) v += input[c][i];
        this.buffer[this.fill++] = v / channels;
        if (this.fill === this.size) {
          this.port.postMessage(this.buffer, [this.buffer.buffer]);
          this.buffer = new Float32Array(this.size);
          this.fill = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('g3n-capture', G3nCapture);
