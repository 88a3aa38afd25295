"""What the page asks of the browser: the theme and style sheet (large text for the back of a classroom, pictures
that fit a phone or a projector, fingers' sizes on phones, the emotions' faces), the page's own scripts (fold the
example clips on a phone, bring the answer into sight) and two scripts for the page's head, one that asks for the
microphone's raw signal and one that says what to do when the microphone cannot start.

Nothing is fetched from elsewhere: the fonts are the system's own (Gradio's bundled Montserrat draws a capital E as
"Ɛ"), and the faces are small SVG drawings inside the style sheet, so no colour-emoji font is needed.
"""

import json
from urllib.parse import quote

import gradio as gr

from ser import words
from ser.plots import EMOTION_COLORS

# The systems' own sans-serif fonts: Windows, Android and ChromeOS, macOS and iOS, then Linux (Debian's Chromium
# has DejaVu and Liberation; DejaVu also holds the page's marks ✓ ✗ ⚠ ✕).
FONTS = ("Segoe UI", "Roboto", "Helvetica Neue", "Noto Sans", "Liberation Sans", "DejaVu Sans", "Arial", "sans-serif")
THEME = gr.themes.Soft(text_size="lg", font=FONTS, font_mono=("DejaVu Sans Mono", "Consolas", "Menlo", "monospace"))

# Each emotion's face: eyes, brows and mouth on a 24 x 24 face in the emotion's colour from the pictures.
FACES = {
    "neutral": "<circle cx='8.5' cy='10' r='1.5'/><circle cx='15.5' cy='10' r='1.5'/><path d='M8 16h8' fill='none'/>",
    "calm": "<path d='M6.5 10q2 1.8 4 0M13.5 10q2 1.8 4 0M8.5 15q3.5 2.5 7 0' fill='none'/>",
    "happy": "<circle cx='8.5' cy='9.5' r='1.5'/><circle cx='15.5' cy='9.5' r='1.5'/><path d='M7 13.5q5 6.5 10 0z'/>",
    "sad": "<circle cx='8.5' cy='10.5' r='1.5'/><circle cx='15.5' cy='10.5' r='1.5'/>"
    "<path d='M6 8l4-1.5M18 8l-4-1.5M8 17.5q4-3.5 8 0' fill='none'/>",
    "angry": "<circle cx='8.5' cy='11' r='1.5'/><circle cx='15.5' cy='11' r='1.5'/>"
    "<path d='M6 6.5l4.5 2.5M18 6.5l-4.5 2.5M8 17.5q4-3 8 0' fill='none'/>",
    "fearful": "<circle cx='8.5' cy='10.5' r='1.8'/><circle cx='15.5' cy='10.5' r='1.8'/>"
    "<path d='M6 7l4-2M18 7l-4-2' fill='none'/><ellipse cx='12' cy='16.5' rx='2.5' ry='2'/>",
    "disgust": "<circle cx='8.5' cy='10' r='1.5'/><path d='M13.5 10h4M6 7l4 1M7.5 16q1.5-1.5 3 0t3 0t3 0' fill='none'/>",
    "surprised": "<circle cx='8.5' cy='10' r='1.8'/><circle cx='15.5' cy='10' r='1.8'/>"
    "<path d='M6 6q2.5-2 4.5 0M13.5 6q2.5-2 4.5 0' fill='none'/><circle cx='12' cy='16.5' r='2.5'/>",
}


def face_css(emotion: str, features: str) -> str:
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' stroke='#212529' stroke-width='1.4' "
        f"stroke-linecap='round' fill='#212529'><circle cx='12' cy='12' r='11' fill='{EMOTION_COLORS[emotion]}'/>"
        f"{features}</svg>"
    )
    return f'.face-{emotion} {{background-image: url("data:image/svg+xml,{quote(svg)}")}}'


CSS = (
    """
/* The verdict reads from the back of a room: 32 px on a phone, 48 px and more on a projector */
#verdict h2 {font-size: clamp(2rem, 3.2vw, 3.4rem); line-height: 1.15; margin: 0.2em 0}
.face {display: inline-block; width: 1em; height: 1em; margin-right: 0.25em; vertical-align: -0.14em;
  background: no-repeat center / contain}
/* Gradio's bars (gr.Label) in the page's font, not a typewriter's */
.confidence-set {font-family: var(--font)}
.notice {border-left: 4px solid #f08c00; padding-left: 0.6em}
/* Pictures are drawn for a phone (ser.plots.WIDTH): they fill the width they are given, up to 1.7 times their
   phone size, never taller than the screen */
.matplotlib img {width: 100%; height: auto; max-width: 680px; max-height: 80vh; margin: 0 auto; display: block}
/* The confusion matrices keep their size and scroll sideways on a phone, so their numbers stay legible */
.confusion .matplotlib {overflow-x: auto}
.confusion .matplotlib img {min-width: 700px; max-width: 900px; max-height: none}
/* On a big screen (a projector) the answer and the active tab share the first screen */
@media (min-width: 1500px) {
  #tabs-column .matplotlib img {max-height: calc(100vh - 330px)}
  #log-mel .matplotlib img {max-height: 34vh}
}
/* The segments table in the page's font (narrower than a typewriter's), broken only between words, so that its
   four columns fit a phone */
#segments * {font-family: var(--font); word-break: keep-all; overflow-wrap: normal; hyphens: manual}
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
    + "\n".join(face_css(e, f) for e, f in FACES.items())
    + "\n"
)
PHONE_PX = 640  # narrower than this, the page is laid out for a phone (as in the style sheet)
# Run once the page has loaded: on a phone, fold the example clips, so the answer is not eight buttons further down.
FOLD_EXAMPLES = f"""() => {{
  if (window.innerWidth >= {PHONE_PX}) return;
  const toggle = document.querySelector("#examples-fold .label-wrap.open, #examples-fold button[aria-expanded=true]");
  if (toggle) toggle.click();
}}"""
# Run after each analysis: bring the verdict to the top of the screen unless it is already wholly in its upper half
# (on a phone it is below the input, and the bars below it; after an example further down the page, above it).
SHOW_VERDICT = """() => {
  const v = document.querySelector("#verdict");
  if (!v) return;
  const box = v.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight / 2 || box.bottom > window.innerHeight) v.scrollIntoView();
}"""
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
# The words are ser.words.MIC's, which the offline page says too.
MIC_HELP = """<script>
(() => {
  const also = " You can still upload a recording or click an example.";
  const why = __MIC_WORDS__;
  const other = __MIC_OTHER__;
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
    show(why[err && err.name] || other.replace("{name}", err && err.name));
    throw err;
  });
})();
</script>""".replace("__MIC_WORDS__", json.dumps(words.MIC)).replace("__MIC_OTHER__", json.dumps(words.MIC_OTHER))
