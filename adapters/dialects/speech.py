"""Translates one piece of Dify TTS text into the route's speech dialect, and the answer into audio bytes.

- openai (`/v1/audio/speech`): `{"model","input","voice","response_format"}` → the audio bytes.
  LiteLLM has no provider-level config for this API (`litellm.speech()` goes through the OpenAI
  SDK), so the four-field body is built here.
- dashscope (qwen-tts, `/api/v1/services/aigc/multimodal-generation/generation`): LiteLLM's
  DashScope text-to-speech config builds `{"model","input":{"text","voice"}}`; the answer is JSON
  with `output.audio.url` (or inline base64 `output.audio.data`), and the audio is downloaded.

The download is done here, not by LiteLLM's `transform_text_to_speech_response`: that one uses
LiteLLM's own client and refuses loopback and private addresses, which a gateway inside a VPC
legitimately hands out. Here the GET goes through the consumer session's client, so its TLS
settings (private CA) apply, but gateway credentials go only to the gateway: the consumer's auth
is attached only when the audio URL has the endpoint's own origin (scheme, host, port). An audio
file elsewhere (DashScope's pre-signed OSS URL) is fetched without any auth, so an API key, JWT
or HMAC signature never reaches a third party. An `http://` URL on `*.aliyuncs.com` is fetched
over https, as LiteLLM does. Error messages name the URL's host and path, never its query (the
signature of a pre-signed URL).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from dify_plugin.errors.model import InvokeConnectionError

from adapters.catalog.loader import CatalogModel
from adapters.dialects.answers import bad_request, json_answer, required_field, route_path, unusable_answer
from adapters.engine.litellm_facade import speech_request_body
from adapters.gateway.errors import stream_error
from adapters.gateway.transport import GatewaySession

_DEFAULT_PORTS = {"http": 80, "https": 443}


def build_speech_request(model: CatalogModel, text: str, voice: str) -> dict[str, Any]:
    match model.route.dialect:
        case "openai":
            audio_type = model.info.audio_type
            return {"model": model.gateway_model, "input": text, "voice": voice, "response_format": audio_type}
        case "dashscope":
            return speech_request_body(provider=model.route.litellm, model=model.gateway_model, text=text, voice=voice)
    raise bad_request(model, f"route {model.route.name!r} has dialect {model.route.dialect!r}, not a speech one.")


def speech_audio(model: CatalogModel, session: GatewaySession, response: httpx.Response) -> bytes:
    """The audio of a 2xx speech answer (downloaded first for the URL dialect)."""
    path = route_path(response)
    if model.route.dialect == "dashscope":
        audio = required_field(json_answer(response), "output", "audio", path=path)
        url, data = (audio.get("url"), audio.get("data")) if isinstance(audio, dict) else (None, None)
        if isinstance(url, str) and url:
            return fetch_audio(session, url, path)
        if isinstance(data, str) and data:
            with unusable_answer(path):
                return base64.b64decode(data, validate=True)
        raise stream_error(path, "output.audio has neither a url nor data")
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(("application/json", "text/")):
        raise stream_error(path, f"expected audio, got {content_type}: {response.text[:200]!r}")
    if not response.content:
        raise stream_error(path, "the audio is empty")
    return response.content


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def fetch_audio(session: GatewaySession, url: str, path: str) -> bytes:
    """GET the synthesized audio; with the consumer's auth only on the gateway's own origin."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise stream_error(path, f"output.audio.url is not a URL: {exc}") from exc
    if target.scheme not in _DEFAULT_PORTS or not target.host:
        raise stream_error(path, f"output.audio.url is not an http(s) URL (scheme {target.scheme!r})")
    if target.scheme == "http" and target.host.endswith(".aliyuncs.com"):
        target = target.copy_with(scheme="https")
    request = session.client.build_request("GET", target)  # the session's timeouts
    if _origin(target) == _origin(httpx.URL(session.endpoint.base_url)):
        return session.send_request(request).content  # the gateway's auth and error mapping
    where = f"{target.scheme}://{target.host}{target.path}"
    try:
        response = session.client.send(request, auth=None)
    except httpx.HTTPError as exc:
        raise InvokeConnectionError(f"Downloading the synthesized audio from {where} failed: {exc}") from exc
    if not response.is_success:
        raise stream_error(path, f"downloading the audio from {where} answered HTTP {response.status_code}")
    return response.content
