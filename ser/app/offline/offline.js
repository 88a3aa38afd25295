// The offline page: record or open a sound, bring it to the model's rate, run the exported model (model.onnx) with
// onnxruntime-web, and say the answer in the app's words. Nothing leaves the browser.
//
// The settings (the model's labels and thresholds, the app's words as templates, the picture's colours) are written
// into index.html by `python -m ser offline` (ser/offline.py). After each analysis, window.serLast holds what was
// analysed (the 16 kHz samples, every output of the model, the milliseconds taken), for tests and benchmarks
// (bench/bench_offline.py); the page's state is in <html data-state>: loading, ready, failed, recording, busy,
// answered or refused, and <html data-analyses> counts the inputs answered or refused.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const settings = JSON.parse($("settings").textContent);
  const RAW = { autoGainControl: false, noiseSuppression: false, echoCancellation: false }; // as the app asks
  const FAILED =
    "The model could not be loaded, so nothing can be analysed on this page. Reload the page; if that does not " +
    "help, ask whoever set it up to make it again.";
  const NOT_MADE =
    "This page has not been made yet. Make it with: python -m ser offline FOLDER, then open the copy in FOLDER.";
  const BROKE = "Something went wrong while listening to this. Try another recording.";

  const state = (s) => (document.documentElement.dataset.state = s);
  const say = (text) => ($("status").textContent = text);

  // ------------------------------------------------------------------ the app's words, filled as Python fills them
  const W = settings && settings.words;
  const M = settings && settings.model;
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (blank, name) => (name in values ? String(values[name]) : blank));
  const pct = (p) => `${(100 * p).toFixed(0)}%`; // Python's f"{p:.0%}"
  const g2 = (x) => String(Number(x.toPrecision(2))); // Python's f"{x:.2g}" for the numbers said here
  const escape = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const marked = (s) => // the templates' Markdown: **bold** and *emphasis*
    escape(s).replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>").replace(/\*(.+?)\*/g, "<em>$1</em>");
  const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  function problem(text, heading) {
    $("answer").hidden = true;
    const box = $("problem");
    box.querySelector("h2").textContent = heading === undefined ? `⚠ ${W.cannot}` : heading;
    box.querySelector("h2").hidden = heading === "";
    box.querySelector("p").textContent = text;
    box.hidden = false;
  }

  // ------------------------------------------------------------------ loading onnxruntime-web and the model
  async function bytes(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }

  // The 14 MB WebAssembly file is stored gzipped (hosts such as Hugging Face take files under 10 MB without Git
  // LFS); a host that already unzipped it on the way (Content-Encoding: gzip) hands over the plain file.
  async function gunzipped(data) {
    if (data[0] !== 0x1f || data[1] !== 0x8b) return data;
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function load() {
    const started = performance.now();
    const vendor = new URL("vendor/", location.href);
    ort.env.wasm.numThreads = 1; // no worker threads, so no cross-origin isolation headers are needed
    ort.env.wasm.wasmPaths = { mjs: new URL("ort-wasm-simd-threaded.mjs", vendor).href };
    const [wasm, model] = await Promise.all([
      bytes(new URL("ort-wasm-simd-threaded.wasm.gz", vendor)).then(gunzipped),
      bytes("model.onnx"),
    ]);
    ort.env.wasm.wasmBinary = wasm;
    const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
    window.serLoadMs = performance.now() - started;
    return session;
  }

  // ------------------------------------------------------------------ sound in: a file or the microphone, at 16 kHz
  const mono = (buffer) => {
    const out = new Float32Array(buffer.length);
    for (let c = 0; c < buffer.numberOfChannels; c++) {
      const channel = buffer.getChannelData(c);
      for (let i = 0; i < out.length; i++) out[i] += channel[i] / buffer.numberOfChannels;
    }
    return out;
  };

  async function fromFile(file) {
    if (file.size === 0) throw new Refusal(W.empty);
    // the app's limit too: decoding a larger file could take all the tab's memory
    if (file.size > M.max_file_bytes) throw new Refusal(fill(W.too_big, { mb: (file.size / 1024 ** 2).toFixed(0) }));
    const data = await file.arrayBuffer();
    let decoded;
    try {
      // decoding into a context at the model's rate resamples too
      decoded = await new OfflineAudioContext(1, 1, M.sample_rate).decodeAudioData(data);
    } catch {
      throw new Refusal(W.unreadable);
    }
    if (decoded.length === 0) throw new Refusal(W.no_sound);
    return { audio: mono(decoded), seconds: decoded.duration };
  }

  async function resampled(samples, rate) {
    if (rate === M.sample_rate) return samples;
    const length = Math.ceil((samples.length * M.sample_rate) / rate);
    const context = new OfflineAudioContext(1, length, M.sample_rate);
    const buffer = context.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    source.start();
    return (await context.startRendering()).getChannelData(0);
  }

  // The microphone's raw samples, block by block, averaged over its channels.
  const RECORDER = `registerProcessor("ser-recorder", class extends AudioWorkletProcessor {
    process(inputs) {
      const channels = inputs[0];
      if (channels.length) {
        const block = new Float32Array(channels[0].length);
        for (const channel of channels) for (let i = 0; i < block.length; i++) block[i] += channel[i] / channels.length;
        this.port.postMessage(block, [block.buffer]);
      }
      return true;
    }
  });`;
  let recording = null;

  async function startRecording() {
    const md = navigator.mediaDevices;
    const refused = (text) => (problem(text, ""), state("refused"));
    if (!md || !md.getUserMedia) return refused(W.mic.insecure); // an insecure origin has no mediaDevices
    let stream;
    try {
      stream = await md.getUserMedia({ audio: RAW });
    } catch (err) {
      return refused(W.mic[err && err.name] || fill(W.mic_other, { name: err && err.name }));
    }
    const context = new AudioContext();
    const blocks = [];
    try {
      const url = URL.createObjectURL(new Blob([RECORDER], { type: "text/javascript" }));
      await context.audioWorklet.addModule(url);
      const node = new AudioWorkletNode(context, "ser-recorder");
      node.port.onmessage = (e) => blocks.push(e.data);
      context.createMediaStreamSource(stream).connect(node);
      node.connect(context.destination); // pulled by the output (it writes only silence to it)
    } catch (err) {
      console.error(err);
      stream.getTracks().forEach((t) => t.stop());
      context.close();
      return refused(fill(W.mic_other, { name: err && err.name }));
    }
    const limit = setTimeout(stopRecording, 1000 * M.decode_seconds);
    recording = { stream, context, blocks, limit };
    $("problem").hidden = true;
    $("record").textContent = "Stop";
    $("record").classList.add("recording");
    say("Recording… press Stop when you have finished.");
    state("recording");
  }

  async function stopRecording() {
    if (!recording) return;
    const { stream, context, blocks, limit } = recording;
    recording = null;
    clearTimeout(limit);
    stream.getTracks().forEach((t) => t.stop());
    const rate = context.sampleRate;
    await context.close();
    $("record").textContent = "Record";
    $("record").classList.remove("recording");
    const samples = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
    blocks.reduce((at, b) => (samples.set(b, at), at + b.length), 0);
    await analyse(async () => {
      if (samples.length === 0) throw new Refusal(W.silent);
      return { audio: await resampled(samples, rate), seconds: samples.length / rate };
    });
  }

  // ------------------------------------------------------------------ the analysis: ser.analyse's checks and words
  class Refusal extends Error {}
  let analyses = 0; // how many inputs were answered or refused: <html data-analyses>

  async function analyse(input) {
    let session;
    try {
      session = await ready;
    } catch {
      return;
    }
    state("busy");
    say("Listening…");
    $("problem").hidden = true;
    try {
      const t0 = performance.now();
      const { audio: whole, seconds: full } = await input();
      const t1 = performance.now();
      // As Python decodes at most decode_seconds of a file: time and memory stay bounded whatever its length.
      const audio = whole.subarray(0, Math.round(M.decode_seconds * M.sample_rate));
      let peak = 0;
      for (let i = 0; i < audio.length; i++) peak = Math.max(peak, Math.abs(audio[i]));
      if (!(20 * Math.log10(peak) >= M.silence_dbfs)) throw new Refusal(W.silent);
      const feeds = { audio: new ort.Tensor("float32", audio, [audio.length]) };
      const out = await session.run(feeds);
      const t2 = performance.now();
      const outputs = Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Array.from(t.data)]));
      const dims = Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.dims]));
      window.serLast = { audio16k: audio, outputs, dims, ms: { input: t1 - t0, model: t2 - t1, total: t2 - t0 } };
      const seconds = outputs.seconds[0];
      if (seconds < M.min_seconds) throw new Refusal(fill(W.too_short, { seconds: g2(seconds) }));
      show(outputs, dims.mel, audio, seconds, full);
      window.serLast.ms.answer = performance.now() - t0; // from the file or the recording to the answer on screen
      window.serLast.at = performance.now(); // since the page was opened
      say("Done. Record again or open another file.");
      state("answered");
    } catch (err) {
      if (!(err instanceof Refusal)) console.error(err);
      problem(err instanceof Refusal ? err.message : BROKE);
      say("Record again or open another file.");
      state("refused");
    } finally {
      document.documentElement.dataset.analyses = ++analyses;
    }
  }

  // ------------------------------------------------------------------ the answer, as the app shows it
  const probsOf = (values, labels) => labels.map((label, i) => [label, values[i]]);
  const argmax = (pairs) => pairs.reduce((best, pair) => (pair[1] > best[1] ? pair : best));

  function verdict(probs) {
    const sorted = [...probs].sort((a, b) => b[1] - a[1]); // stable: ties keep the labels' order, as in Python
    const [top, p1] = sorted[0];
    const [second, p2] = sorted[1] || ["", 0];
    const heading = fill(W.heading, { top: capital(top), p1: pct(p1) });
    const values = { top, p1: pct(p1), second, p2: pct(p2) };
    let said;
    if (p1 < M.unsure_top || p1 - p2 < M.unsure_margin) {
      const why = fill(p1 - p2 < M.unsure_margin ? W.unsure_close : W.unsure_flat, values);
      said = fill(W.unsure, { why });
    } else if (p1 >= M.confident_top && !M.may_say_confident) {
      said = fill(W.leaning, values);
    } else {
      said = fill(W.sure, { ...values, sure: p1 >= M.confident_top ? "confident" : "fairly sure" });
    }
    return { heading, said, sorted };
  }

  function listeners(outputs, heardVoice) {
    if (!heardVoice) return "";
    const heard = [
      ["cnn", probsOf(outputs.cnn, M.cnn_labels)],
      ["voice", probsOf(outputs.voice, M.voice_labels)],
    ].map(([k, probs]) => [k, argmax(probs)]);
    const phrases = heard.map(([k, [label, p]]) => fill(W.heard, { listener: W.listener_names[k], label, p: pct(p) }));
    return heard[0][1][0] === heard[1][1][0]
      ? fill(W.agree, { heard: phrases.join(" and ") })
      : fill(W.disagree, { heard: phrases.join("; ") });
  }

  function notes(audio, outputs, seconds, full) {
    const limit = M.max_seconds;
    const heard = Math.min(seconds, limit); // seconds of the clip the model heard (trimmed, cut)
    let peak = 0;
    let clipped = 0;
    for (let i = 0; i < audio.length; i++) {
      const a = Math.abs(audio[i]);
      peak = Math.max(peak, a);
      clipped += a >= M.clip_level;
    }
    const said = [];
    const share = clipped / Math.max(1, Math.round(heard * M.sample_rate));
    if (share > M.clip_fraction) said.push(fill(W.too_loud, { percent: (100 * share).toFixed(1) }));
    const db = 20 * Math.log10(peak);
    if (db >= M.silence_dbfs && db < M.quiet_dbfs) said.push(W.very_quiet);
    const speech = outputs.speech[0];
    if (speech < M.min_speech_fraction) said.push(fill(W.not_speech, { percent: (100 * speech).toFixed(0) }));
    let sound = seconds;
    if (seconds >= limit && full > audio.length / M.sample_rate) sound = Math.max(sound, full); // not all decoded
    if (sound > limit) said.push(fill(W.only_first, { seconds: sound.toFixed(0) }));
    if (M.listeners.includes("voice") && heard < M.voice_min_seconds) said.push(W.only_picture);
    return said;
  }

  function bars(sorted) {
    const box = $("bars");
    box.replaceChildren();
    sorted.forEach(([label, p], i) => {
      const name = document.createElement("span");
      name.textContent = label;
      const track = document.createElement("div");
      const bar = document.createElement("div");
      bar.className = i === 0 ? "bar top" : "bar";
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      track.append(bar);
      const share = document.createElement("span");
      share.className = "share";
      share.textContent = pct(p);
      box.append(name, track, share);
    });
  }

  // The model's input as the app draws it: low pitch at the bottom, time left to right, its colours (magma).
  function picture(mel, [bands, frames]) {
    const canvas = $("picture");
    canvas.width = frames;
    canvas.height = bands;
    const context = canvas.getContext("2d");
    const image = context.createImageData(frames, bands);
    let low = Infinity;
    let high = -Infinity;
    for (const v of mel) (low = Math.min(low, v)), (high = Math.max(high, v));
    const colours = settings.colours.picture;
    for (let b = 0; b < bands; b++) {
      for (let f = 0; f < frames; f++) {
        const level = (mel[b * frames + f] - low) / (high - low || 1);
        const rgb = colours[Math.min(colours.length - 1, Math.floor(level * colours.length))];
        const at = 4 * ((bands - 1 - b) * frames + f);
        image.data.set([...rgb, 255], at);
      }
    }
    context.putImageData(image, 0, 0);
  }

  function show(outputs, melDims, audio, seconds, full) {
    const probs = probsOf(outputs.probs, M.labels);
    const { heading, said, sorted } = verdict(probs);
    const heardVoice = M.listeners.includes("voice") && Math.min(seconds, M.max_seconds) >= M.voice_min_seconds;
    $("verdict").innerHTML = `<h2>${escape(heading)}</h2><p>${marked(said)}</p>`;
    $("listeners").innerHTML = marked(listeners(outputs, heardVoice));
    $("notes").replaceChildren(
      ...notes(audio, outputs, seconds, full).map((note) => {
        const item = document.createElement("li");
        item.textContent = `⚠ ${note}`;
        return item;
      }),
    );
    bars(sorted);
    picture(outputs.mel, melDims);
    $("picture").setAttribute("aria-label", W.picture_title);
    $("answer").hidden = false;
    // Bring the verdict to the top of the screen unless it is already wholly in its upper half (as the app does).
    const box = $("verdict").getBoundingClientRect();
    if (box.top < 0 || box.top > innerHeight / 2 || box.bottom > innerHeight) $("verdict").scrollIntoView();
  }

  // For tests: the verdict's words for probabilities in the model's label order.
  window.serVerdict = (values) => {
    const { heading, said } = verdict(probsOf(values, M.labels));
    return { heading, said: said.replaceAll("**", "") };
  };

  // ------------------------------------------------------------------ the page
  if (!settings) {
    state("failed");
    problem(NOT_MADE, "");
    say("");
    return;
  }
  document.querySelectorAll("[data-word]").forEach((e) => (e.innerHTML = marked(W[e.dataset.word])));
  state("loading");
  const ready = load();
  ready.then(
    () => {
      window.serReadyAt = performance.now(); // since the page was opened
      $("record").disabled = $("file").disabled = false;
      $("file-label").classList.remove("disabled");
      say("Ready. Record a short sentence (2 to 10 seconds) or open a sound file.");
      state("ready");
    },
    (err) => {
      console.error(err);
      problem(FAILED, "");
      say("");
      state("failed");
    },
  );
  $("record").addEventListener("click", () => (recording ? stopRecording() : startRecording()));
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // the same file again is a new choice
    if (file) analyse(() => fromFile(file));
  });
})();
