"""Block Kit validity, judged by Slack's side: slack_sdk's own models plus the documented limits
slack_sdk does not check. The fake Slack runs this on every message and view it receives.

    problems = message_problems(args)   # chat.postMessage / update / postEphemeral / response_url
    problems = view_problems(view)      # views.open / publish / update / push
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
HEADER_TEXT = 150
BUTTON_VALUE = 2000
ID_MAX = 255  # block_id, action_id, callback_id
MODAL_LABEL = 24  # title, submit, close
PRIVATE_METADATA = 3000
MESSAGE_TEXT = 40000  # chat.postMessage truncates beyond; we never want to get near it


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object under `value`, with its JSON pointer."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _walk(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}/{i}")


def _block_problems(blocks: Any, *, limit: int, where: str,
                    actions_per_block: bool = False) -> list[str]:
    """Each block through slack_sdk, the limits, unique block_ids; action_ids unique in the
    message (stricter than Slack) or, for views, in each block (Slack's rule: inputs may all
    use the same action_id)."""
    if not isinstance(blocks, list):
        return [f"{where}: blocks is {type(blocks).__name__}, not a list"]
    problems = []
    if len(blocks) > limit:
        problems.append(f"{where}: {len(blocks)} blocks (Slack allows {limit})")
    for i, raw in enumerate(blocks):
        at = f"{where}/blocks/{i}"
        parsed = Block.parse(raw) if isinstance(raw, dict) else None
        if parsed is None:
            problems.append(f"{at}: not a Block Kit block: {str(raw)[:120]}")
            continue
        try:
            parsed.validate_json()
        except SlackObjectFormationError as exc:
            problems.append(f"{at} ({raw.get('type')}): {exc}")
        problems += _limits(raw, at)
    block_ids = Counter(b.get("block_id") for b in blocks if isinstance(b, dict)
                        and b.get("block_id"))
    problems += [f"{where}: block_id {k!r} used {n} times" for k, n in block_ids.items() if n > 1]
    scopes = [b for b in blocks if isinstance(b, dict)] if actions_per_block else [blocks]
    for scope in scopes:
        action_ids = Counter(o["action_id"] for _, o in _walk(scope) if "action_id" in o)
        problems += [f"{where}: action_id {k!r} used {n} times" for k, n in action_ids.items()
                     if n > 1]
    return problems


def _limits(block: dict[str, Any], at: str) -> list[str]:
    """The documented limits slack_sdk's validate_json leaves out."""
    problems = []
    kind = block.get("type")
    text = (block.get("text") or {}).get("text") if isinstance(block.get("text"), dict) else None
    if kind == "section" and text is not None and len(text) > SECTION_TEXT:
        problems.append(f"{at}: section text is {len(text)} characters (max {SECTION_TEXT})")
    if kind == "header" and text is not None and len(text) > HEADER_TEXT:
        problems.append(f"{at}: header text is {len(text)} characters (max {HEADER_TEXT})")
    for path, obj in _walk(block, at):
        for key in ("block_id", "action_id", "callback_id"):
            if isinstance(obj.get(key), str) and len(obj[key]) > ID_MAX:
                problems.append(f"{path}: {key} is {len(obj[key])} characters (max {ID_MAX})")
        if obj.get("type") == "button" and len(str(obj.get("value") or "")) > BUTTON_VALUE:
            problems.append(f"{path}: button value is {len(obj['value'])} characters "
                            f"(max {BUTTON_VALUE})")
        if obj.get("type") == "plain_text_input" and obj.get("initial_value") is not None:
            cap = obj.get("max_length")
            if cap is not None and len(obj["initial_value"]) > cap:
                problems.append(f"{path}: initial_value is {len(obj['initial_value'])} "
                                f"characters, above its max_length {cap}")
        if obj.get("type") in ("mrkdwn", "plain_text") and "\x00" in str(obj.get("text", "")):
            problems.append(f"{path}: text holds a NUL byte")
    return problems


def message_problems(args: dict[str, Any], *, where: str = "message") -> list[str]:
    """What Slack would refuse (or show broken) in a message with these arguments."""
    blocks = args.get("blocks")
    if blocks is None:
        return []
    problems = _block_problems(blocks, limit=MESSAGE_BLOCKS, where=where)
    text = args.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}: blocks without a `text` fallback (notifications, screen "
                        "readers)")
    elif len(text) > MESSAGE_TEXT:
        problems.append(f"{where}: text is {len(text)} characters")
    return problems


def view_problems(view: Any, *, where: str = "view") -> list[str]:
    """What Slack would refuse in a modal or Home tab view."""
    if not isinstance(view, dict):
        return [f"{where}: view is {type(view).__name__}, not an object"]
    problems = _block_problems(view.get("blocks") or [], limit=VIEW_BLOCKS, where=where,
                               actions_per_block=True)
    try:
        View(**{k: v for k, v in view.items() if k not in ("id", "hash", "state", "team_id",
                                                           "app_id", "bot_id")}).validate_json()
    except (SlackObjectFormationError, TypeError) as exc:
        problems.append(f"{where}: {exc}")
    for key in ("title", "submit", "close"):
        label = (view.get(key) or {}).get("text", "") if isinstance(view.get(key), dict) else ""
        if len(label) > MODAL_LABEL:
            problems.append(f"{where}: {key} is {len(label)} characters (max {MODAL_LABEL})")
    metadata = view.get("private_metadata") or ""
    if len(metadata) > PRIVATE_METADATA:
        problems.append(f"{where}: private_metadata is {len(metadata)} characters "
                        f"(max {PRIVATE_METADATA})")
    callback = view.get("callback_id") or ""
    if len(callback) > ID_MAX:
        problems.append(f"{where}: callback_id is {len(callback)} characters (max {ID_MAX})")
    return problems


MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral",
                   "chat.scheduleMessage")
VIEW_METHODS = ("views.open", "views.publish", "views.update", "views.push")


def call_problems(method: str, args: dict[str, Any]) -> list[str]:
    """Problems in one Web API call's payload (messages and views; other methods: none)."""
    if method in MESSAGE_METHODS:
        return message_problems(args, where=method)
    if method in VIEW_METHODS:
        return view_problems(args.get("view"), where=method)
    return []
