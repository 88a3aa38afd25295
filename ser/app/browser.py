"""What the page asks of the browser: the theme and style sheet (large text for the back of a classroom, pictures
that fit a phone or a projector, fingers' sizes on phones) and two scripts for the page's head, one that asks for
the microphone's raw signal and one that says what to do when the microphone cannot start."""

import gradio as gr

THEME = gr.themes.Soft(text_size="lg")  # large text: read from the back of a classroom and on a phone
CSS = """
#verdict h2 {font-size: 2rem; margin: 0.2em 0}
.notice {border-left: 4px solid #f08c00; padding-left: 0.6em}
/* Pictures fill the width they are given (a projector's column, a phone's screen), never taller than the screen */
.matplotlib img {width: 100%; height: auto; max-height: 80vh}
.confusion .matplotlib img {max-width: 900px; max-height: none}
/* On a big screen (a projector), the verdict, the chart and the spectrogram share the first screen */
@media (min-width: 1500px) and (min-height: 900px) {
  #probabilities .matplotlib img {max-height: 40vh}
  #log-mel .matplotlib img {max-height: 28vh}
}
/* Never break a word: long table rows scroll sideways instead */
.prose table {display: block; overflow-x: auto; width: max-content; max-width: 100%; border: none}
.prose td, .prose th, .prose p, .prose li {word-break: normal; overflow-wrap: normal; hyphens: manual}
.prose td, .prose th {font-size: max(14px, 1em)}
#mic-message {position: fixed; top: 0; left: 0; right: 0; z-index: 1000; display: flex; gap: 1em;
  align-items: center; padding: 0.8em 1em; background: #fff3bf; color: #222; border-bottom: 3px solid #f08c00;
  font-size: 1.1rem}
#mic-message[hidden] {display: none}
#mic-message button {min-width: 44px; min-height: 44px; font-size: 1.2rem}
/* Phones: every button, tab and switch is at least 44 px each way, so a finger can hit it */
@media (max-width: 640px) {
  button, [role="tab"], label:has(input[type="checkbox"]), label:has(input[type="radio"]) {
    min-height: 44px; min-width: 44px
  }
  button svg {max-width: 28px; max-height: 28px}
}
"""
# Browsers run gain control, noise suppression and echo cancellation on microphone audio by default. They reshape
# the loudness contour and spectrum the model reads (it was trained on unprocessed audio, with its own noise and
# room augmentation) and cost it 8 UAR points in bench/bench_mic.py, so the app asks for the raw signal.
RAW_MIC = """<script>
(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return;
  const get = md.getUserMedia.bind(md);
  const raw = { autoGainControl: false, noiseSuppression: false, echoCancellation: false };
  md.getUserMedia = (c) =>
    get(c && c.audio ? { ...c, audio: c.audio === true ? raw : { ...raw, ...c.audio } } : c);
})();
</script>"""


# Pressing Record with no microphone, with the microphone blocked, or on a page served over plain http (browsers
# allow microphones only on https:// and localhost) otherwise does nothing: say what happened and what to do.
MIC_HELP = """<script>
(() => {
  const also = " You can still upload a recording or click an example.";
  const why = {
    insecure: "The microphone only works when the page address starts with https:// (or http://localhost on "
      + "the computer running the app). Ask whoever set up the app to serve it over https.",
    NotAllowedError: "The microphone is blocked. Click the lock or microphone icon next to the page address, "
      + "allow the microphone, then press Record again.",
    SecurityError: "The microphone is blocked for this page. Allow it in the browser's site settings, "
      + "then press Record again.",
    NotFoundError: "No microphone was found. Plug one in or switch it on, then press Record again.",
    NotReadableError: "The microphone is busy or not working. Close other apps that use it (such as video "
      + "calls), then press Record again.",
  };
  const show = (text) => {
    let box = document.getElementById("mic-message");
    if (!box) {
      box = document.createElement("div");
      box.id = "mic-message";
      box.setAttribute("role", "alert");
      box.innerHTML = '<span></span><button type="button" aria-label="Close this message">✕</button>';
      box.querySelector("button").onclick = () => { box.hidden = true; };
      document.body.appendChild(box);
    }
    box.querySelector("span").textContent = text + also;
    box.hidden = false;
  };
  const hide = () => { const box = document.getElementById("mic-message"); if (box) box.hidden = true; };
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) {  // an insecure origin has no navigator.mediaDevices at all
    document.addEventListener("click", (e) => {
      if (e.target.closest && e.target.closest(".record-button, [aria-label='Record audio']")) show(why.insecure);
    }, true);
    return;
  }
  const get = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => get(c).then((stream) => { hide(); return stream; }, (err) => {
    show(why[err && err.name] || `The microphone could not start (${err && err.name}). Check that it is `
      + "plugged in and allowed, then press Record again.");
    throw err;
  });
})();
</script>"""
