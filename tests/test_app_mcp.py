"""The app's MCP tools (`ser.app.mcp_tools`), through the `mcp` package's own client over streamable HTTP to the app
served in this process: the two tools and their limits, an example clip answered as `ser.analyse_file` answers it,
bad input refused in the page's plain words, a recording followed over time, and every file handed over deleted."""

import asyncio
import base64
import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import UNUSABLE_FILES, talk_pause_talk, write
from gradio_client.utils import encode_file_path
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from ser.app import page
from ser.audio import AudioError
from ser.inference import analyse_file
from ser.timeline import SILENCE, timeline_file

TOOLS = {"emotion_of_recording", "emotion_over_time"}
CLIP = sorted(page.EXAMPLES.glob("*.flac"))[0]


def call(url: str, *calls: tuple[str, dict]) -> tuple[list, list]:
    """(the tools listed, the result of each call) from one MCP session with the app at `url`."""

    async def session():
        async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                tools = (await s.list_tools()).tools
                return tools, [await s.call_tool(name, arguments) for name, arguments in calls]

    return asyncio.run(session())


def uploaded(url: str, path: Path, name: str | None = None) -> str:
    """`path` uploaded as Gradio's upload_file_to_gradio tool uploads a file for an MCP client: the URL it gives."""
    with open(path, "rb") as f:
        files = {"files": (name or path.name, f)}
        stored = httpx.post(f"{url}gradio_api/upload", files=files).raise_for_status().json()[0]
    return f"{url}gradio_api/file={encode_file_path(stored)}"


def uploaded_by_gradio(url: str, path: Path) -> str:
    """`path` uploaded by Gradio's own upload tool, `gradio upload-mcp URL FOLDER` (a stdio MCP server, as the
    README configures it): the URL it gives the assistant."""
    gradio = Path(sys.executable).with_name("gradio")  # the command this environment installed with gradio
    server = StdioServerParameters(command=str(gradio), args=["upload-mcp", url, str(path.parent)])

    async def session():
        async with stdio_client(server) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            return await s.call_tool("upload_file_to_gradio", {"file": str(path)})

    result = asyncio.run(session())
    assert not result.isError, result.content[0].text
    return result.content[0].text


def data_url(path: Path) -> str:
    """`path` sent inline, as an assistant may send a small file."""
    return f"data:audio/{path.suffix[1:]};base64," + base64.b64encode(path.read_bytes()).decode()


def answer(result) -> dict:
    assert not result.isError, result.content[0].text
    (content,) = result.content
    return json.loads(content.text)


def files_in(uploads: Path) -> list[Path]:
    return [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []


def test_the_tools_are_the_two_analyses_and_say_their_limits(app_server):
    url, _ = app_server
    tools, _ = call(url)
    assert {t.name for t in tools} == TOOLS  # /predict, /timeline and /explain (pictures) are no tools
    assert {t["name"] for t in httpx.get(f"{url}gradio_api/mcp/schema").json()} == TOOLS  # the API page's MCP list
    api = httpx.get(f"{url}gradio_api/info").json()["named_endpoints"]  # the API page's list for gradio_client
    assert set(api) == {"/predict", "/timeline", "/explain", *(f"/{t}" for t in TOOLS)}
    for tool in tools:
        words = tool.description.lower()
        assert "acted speech" in words and "a guess" in words and "not how a person feels" in words
        assert "never measured" in words  # the test model has no metrics.json: its accuracy is unknown
        assert tool.inputSchema["required"] == ["audio"]
        assert "/gradio_api/upload" in tool.inputSchema["properties"]["audio"]["description"]
    by_name = {t.name: t.description for t in tools}
    assert "first 30 seconds" in by_name["emotion_of_recording"]  # the test model's max_seconds
    assert "first 10 minutes" in by_name["emotion_over_time"]


def test_an_example_clip_is_answered_as_ser_answers_it(app_server, model):
    url, uploads = app_server
    _, results = call(
        url,
        ("emotion_of_recording", {"audio": uploaded_by_gradio(url, CLIP)}),
        ("emotion_of_recording", {"audio": uploaded(url, CLIP, name="my clip (1).flac")}),  # a URL-encoded path
        ("emotion_of_recording", {"audio": data_url(CLIP)}),
    )
    expected = analyse_file(model, CLIP)
    for got in map(answer, results):
        assert got["label"] == expected.label
        assert got["probs"] == pytest.approx(expected.probs, abs=5.1e-5)  # rounded to 4 decimals
        assert got["listeners"]["cnn"] == pytest.approx(expected.listeners["cnn"], abs=5.1e-5)
        assert got["notes"] == expected.notes
        assert got["seconds_heard"] == pytest.approx(len(expected.audio) / 16000, abs=0.01)
    assert not files_in(uploads), "a file handed to a tool was kept"


def test_bad_input_is_refused_in_the_pages_plain_words(app_server, model, tmp_path, capfd):
    url, uploads = app_server
    silent = write(tmp_path / "silent.wav", np.zeros(16000, np.float32))
    make, _ = UNUSABLE_FILES["random bytes .m4a"]
    garbled = make(tmp_path)
    once = uploaded(url, CLIP)
    _, results = call(
        url,
        ("emotion_of_recording", {"audio": data_url(silent)}),
        ("emotion_over_time", {"audio": uploaded(url, garbled)}),
        ("emotion_of_recording", {"audio": once}),
        ("emotion_of_recording", {"audio": once}),  # analysed and deleted by the call before
        ("emotion_of_recording", {"audio": "/etc/passwd"}),
        ("emotion_of_recording", {"audio": f"{url}nothing.wav"}),  # another address: never fetched
        ("emotion_of_recording", {"audio": "data:audio/wav;base64,@@@"}),
    )
    texts = [r.content[0].text if r.isError else None for r in results]
    for f in (silent, garbled):
        with pytest.raises(AudioError) as e:
            analyse_file(model, f)
        assert e.value.plain in texts
    assert texts[0] == "We could not hear anything. Check that the microphone is on and not muted, then record again."
    assert texts[2] is None and texts[3].startswith("That file is gone")
    assert texts[4].startswith("No recording at '/etc/passwd': upload the file")
    assert texts[5].startswith("This app does not fetch") and "not valid base64" in texts[6]
    for text in texts[:2] + texts[3:]:
        assert "\n" not in text and "Traceback" not in text and "Error" not in text
    assert "Traceback" not in capfd.readouterr().err  # nor in the server's log
    assert not files_in(uploads), "a refused file was kept"


def test_a_recording_is_followed_over_time(app_server, model, tmp_path):
    url, uploads = app_server
    talk = talk_pause_talk(tmp_path)  # 4 s of speech, 3 s of pause, 4 s of a lower voice
    _, (result,) = call(url, ("emotion_over_time", {"audio": uploaded(url, talk)}))
    got, expected = answer(result), timeline_file(model, talk)
    assert got["seconds"] == pytest.approx(11.0) and got["truncated"] is False
    assert [(s["start"], s["end"], s["label"]) for s in got["segments"]] == [
        (round(s.start, 3), round(s.end, 3), s.label) for s in expected.segments
    ]
    assert any(s["label"] == SILENCE and s["start"] <= 5.5 < s["end"] for s in got["segments"])  # the pause
    for s in got["segments"]:
        if s["label"] == SILENCE:
            assert s["probs"] is None and s["confidence"] is None
        else:  # the segment's mean probabilities: its emotion's is its confidence
            assert sum(s["probs"].values()) == pytest.approx(1, abs=1e-3)
            assert s["probs"][s["label"]] == pytest.approx(s["confidence"], abs=1e-3)
    assert not files_in(uploads), "the recording was kept"
