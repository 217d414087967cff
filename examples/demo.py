"""Offline demo: the real openai SDK and the real Amplitude client, both on loopback.

Starts a local OpenAI-compatible stub and a local stand-in for Amplitude's HTTP API,
turns tracking on with one line, makes a few ordinary OpenAI calls, and prints the
`llm_operation` events exactly as Amplitude would receive them. Nothing leaves the
machine; no API keys are needed.

    python examples/demo.py
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

# The loopback servers are the ones the test suite uses.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import openai

import amplitude
import amplitude.ai
from loopback import AmplitudeCapture, OpenAIStub, Reply


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("amplitude.ai").setLevel(logging.INFO)  # shows what was patched
    with OpenAIStub() as llm, AmplitudeCapture() as amplitude_api:
        analytics = amplitude.Amplitude("demo-amplitude-key", amplitude.Config(server_url=amplitude_api.url))
        amplitude.ai.track(analytics)  # <- the only line tracking needs

        client = openai.OpenAI(api_key="sk-demo-not-a-real-key", base_url=llm.base_url, max_retries=0)
        messages = [{"role": "user", "content": "Say hello."}]

        reply = client.chat.completions.create(model="gpt-4o", messages=messages, temperature=0.3)
        print("chat:", reply.choices[0].message.content)

        stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        print("stream:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))

        print("responses:", client.responses.create(model="gpt-4o", input="Say hello.").output_text)
        vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        print("embeddings:", len(vectors.data), "vectors")
        llm.enqueue(Reply.error(404, "The model `no-such-model` does not exist", code="model_not_found"))
        try:
            client.chat.completions.create(model="no-such-model", messages=messages)
        except openai.APIStatusError as exc:
            print("error:", type(exc).__name__)

        amplitude.ai.flush()
        events = amplitude_api.wait_for(5)
        print(f"\n{len(events)} events received by the (local) Amplitude HTTP API:\n")
        for event in events:
            shown = {k: event[k] for k in ("event_type", "user_id", "device_id") if k in event}
            shown["event_properties"] = event["event_properties"]
            print(json.dumps(shown, indent=2, sort_keys=False))
        analytics.shutdown()


if __name__ == "__main__":
    main()
