"""What the emulator does where no vendor page settles it: ONE table, each entry with the page line it rests on.

The emulator imitates DashScope as the vendor pages describe it (shared/seeds: 000 = wan2.6 page, Indonesian;
001 = wan2.7 page, Simplified Chinese; 002 = wan2.6 page, Traditional Chinese; 003 = wan2.5 page, Indonesian;
and shared/wan-api-reference.md, "the reference"). Where a page is silent, cut off or contradicts itself, the
emulator still has to answer something: this table says what, and why, so that the next reader (or a user
running `python -m api.probe` against the real service) can check it and correct it. The code that acts on
an entry names it (`ASSUMPTIONS["..."]`); `GET /__emulator__/assumptions` serves the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Assumption:
    key: str
    emulator_does: str      # what the emulator answers
    rests_on: str           # the page line(s) it is read from
    unsettled: str          # what the pages leave open


_TABLE = [
    Assumption(
        "stream_undocumented",
        "A streaming request (X-DashScope-Sse: enable or parameters.stream: true) for any model or mode but "
        "wan2.6-image interleaved output is refused with HTTP 400 InvalidParameter, before anything is billed.",
        "seed 000 line 14: 'Pengeditan gambar' and 'Output teks-gambar interleaved (hanya streaming)' - "
        "streaming is named only for interleave; seed 000 line 505 (Java): 'Image editing uses standard "
        "synchronous call; no need to set stream or enable_interleave'; seed 001 lines 40-166 (wan2.7 "
        "sync): headers Content-Type and Authorization only, no X-DashScope-Sse.",
        "Whether the real service refuses such a request, ignores the header and answers plain JSON, or "
        "streams anyway. Refusing is the conservative reading; the fault `stream_as_json` imitates the "
        "plain-JSON answer, so the client is tested against both.",
    ),
    Assumption(
        "stream_refusal_message",
        "The refusal's message: 'The model <model> does not support streaming output for this request "
        "(X-DashScope-Sse: enable is documented for enable_interleave=true only)'.",
        "seed 001 lines 429-433: an error answer is {request_id, code, message}.",
        "The real wording (only the code family is guessed).",
    ),
    Assumption(
        "preset_size_wan26",
        "wan2.6-image 1K/2K: 1024^2 / 2048^2 pixels at the aspect of the last input picture, each side "
        "rounded to the nearest multiple of 32 (1696x960 at 1K -> 1376*768).",
        "seed 000 lines 104, 118 and 152: an input '...tps-1696-960.webp' asked at size='1K' answers "
        "\"size\": \"1376*768\" (again at lines 280, 542, 677).",
        "The rule itself: one example. Rounding to 16 would give 1360*768, exact arithmetic 1361*770; "
        "only 32 reproduces the page.",
    ),
    Assumption(
        "preset_size_wan27",
        "wan2.7 1K/2K/4K: 1024^2 / 2048^2 / 4096^2 pixels at the aspect of the last input picture (square "
        "without one), NOT rounded to any multiple: width = round(sqrt(area * aspect)), height = "
        "round(width / aspect).",
        "seed 001 line 282: '1K:1024*1024、2K:2048*2048、4K:4096*4096'; line 286: '输出宽高比与输入图像(多图"
        "输入时为最后一张)一致'; lines 1259, 1403, 1724, 1851: \"size\": \"2985*1405\" for a 2K edit; line 306: "
        "'输出图片的像素值可能和指定像素值存在微小差异'.",
        "The same page also shows 2976*1408 (line 1011) and 1488*704 (line 419), multiples of 16, so the "
        "service is not consistent; the emulator follows 2985*1405 so that no client may assume rounding.",
    ),
    Assumption(
        "explicit_size_exact",
        "An explicit W*H size is returned exactly as asked (usage.size and the PNG).",
        "seed 000 lines 314 and 460: size='1280*1280' answers \"size\": \"1280*1280\".",
        "seed 001 line 306 warns the real size may differ slightly from the asked one.",
    ),
    Assumption(
        "wan25_default_size",
        "wan2.5 without a size: 1280^2 pixels at the last input picture's aspect, not rounded.",
        "seed 003 line 119: '# size=\"1280*1280\",' (commented out in the example); the reference: 'default "
        "1280^2 total at the last image's aspect'.",
        "The page's resolution table is cut off (seed 003 line 12); no example answer shows a size.",
    ),
    Assumption(
        "wan25_seed_string",
        "wan2.5's parameters.seed is accepted as an integer or as a string of digits (0-2147483647); other "
        "models take integers only.",
        "seed 003 lines 336 and 453 (Java): parameters.put(\"seed\", \"12345\"); line 122 (Python): seed=12345.",
        "Whether the other models take a string too (no page shows it), and what a non-numeric string gets "
        "(here: 400 InvalidParameter).",
    ),
    Assumption(
        "reference_limits",
        "wan2.6-image and wan2.5-i2i-preview prompt, negative prompt, picture sides/bytes/aspect, size range, "
        "n and max_images limits are the reference's numbers (rules.py SERVICE_MODELS and validators).",
        "shared/wan-api-reference.md, sections wan2.6-image and wan2.5-i2i-preview ('unverified: treat them as "
        "assumptions'); the pages keep only examples (seed 000, 002) and 'hingga tiga gambar' (seed 003 line 1).",
        "Every one of those numbers; the client marks them reference_only and lets the service judge them.",
    ),
    Assumption(
        "task_error_shapes",
        "A failed task answers the query with HTTP 200 and output.task_status FAILED plus output.code / "
        "output.message; the fault `task_error_body` answers instead with the top-level {request_id, code, "
        "message} and no output.",
        "seed 001 lines 1019-1027 ('任务执行异常': the top-level form, no output, no status shown); the "
        "reference: 'Task failures come back as HTTP 200 ... output.code/output.message'; seed 003 line 53.",
        "Which of the two forms (and which HTTP status) the real service uses for a task query.",
    ),
    Assumption(
        "missing_async_header",
        "An async creation without X-DashScope-Async: enable answers HTTP 403 AccessDenied with the message "
        "'current user api does not support synchronous calls'.",
        "seed 001 line 661: '缺少此请求头将报错:“current user api does not support synchronous calls”'; seed 000 "
        "line 44 and seed 003 line 32 say the same.",
        "The HTTP status and the code (the pages quote only the message).",
    ),
    Assumption(
        "interleave_needs_stream",
        "wan2.6 interleave on the sync endpoint without streaming answers 400 InvalidParameter.",
        "seed 000 line 14: 'Output teks-gambar interleaved (hanya streaming)'; seed 002 line 13 '圖文混排(僅支援流式)'.",
        "What the service answers instead (status, code, message).",
    ),
    Assumption(
        "wrong_key",
        "A missing key answers 401 InvalidApiKey 'No API-key provided.'; a key the emulator was not given "
        "(--api-key) answers 401 InvalidApiKey 'Invalid API-key provided.'. Without --api-key any key is taken.",
        "seed 001 lines 904-908: {\"code\": \"InvalidApiKey\", \"message\": \"No API-key provided.\"}; seed 001 "
        "line 38: keys of another region fail ('跨地域调用将导致鉴权失败').",
        "The message for a wrong (not a missing) key, and the status (401 is the reference's).",
    ),
    Assumption(
        "cancel_not_pending",
        "Canceling a task that is not PENDING (or does not exist) answers 400 UnsupportedOperation.",
        "seed 003 line 227: 'Hanya tugas dalam status PENDING yang dapat dibatalkan' (only PENDING tasks can "
        "be canceled).",
        "The code and status of the refusal (no page shows it).",
    ),
    Assumption(
        "unknown_task",
        "A query of an unknown task id answers HTTP 200 with output.task_status UNKNOWN.",
        "seed 001 line 936: 'UNKNOWN:任务不存在或状态未知'.",
        "Whether it is HTTP 200 (here) or an error status.",
    ),
    Assumption(
        "unknown_transient",
        "Only with the fault `task_unknown`: a task that exists answers UNKNOWN to some queries while it runs "
        "on (and bills when it ends). By itself the emulator answers UNKNOWN only for ids it never made or "
        "after 24 hours.",
        "seed 001 line 936 and 1055: 'UNKNOWN:任务不存在或状态未知' (the task does not exist OR its status is "
        "unknown): UNKNOWN is not only 'gone'.",
        "How long and how often the real service answers UNKNOWN for a live task. The client therefore gives "
        "a task up only after 24 hours or an unbroken run of UNKNOWN answers (api/service/calls.py wait_task).",
    ),
    Assumption(
        "stream_error_rest",
        "After an error frame in a stream, the pictures not yet sent were not made: only the pictures whose "
        "frames arrived are billed (backend.unbill).",
        "seed 000 line 25 (wan2.6, streaming output): 'Kegagalan eksekusi tugas Jika tugas gagal, informasi "
        "kesalahan dikembalikan' (a failed task returns code and message, nothing about pictures); "
        "wan-api-reference.md: 'An error mid-stream arrives as event:error', 'Billing is per successfully "
        "generated image'.",
        "Whether the service had made (and bills) pictures it had not sent yet when the error came.",
    ),
    Assumption(
        "no_pictures",
        "Only with the fault `no_pictures` (wan2.6, wan2.7): the answer (task, sync or stream) SUCCEEDS with no "
        "image item: interleaved output is its text alone, any other mode an empty `content`; usage says "
        "image_count 0 and size \"0*0\", and nothing is billed. By itself the emulator always returns pictures.",
        "seed 000 line 742 (wan2.6 stream): frames before any picture carry \"image_count\":0,\"size\":\"0*0\"; "
        "seed 002 line 78: '按成功產生的 映像張數 計費' (billed by the number of pictures generated "
        "successfully); wan-api-reference.md: interleave's max_images is 'a ceiling' (the model decides how "
        "many); seed 001 line 485: usage '只对成功的结果计数' (counts only successful results).",
        "No page settles whether the service ever ends an interleaved answer with text alone, or a SUCCEEDED "
        "answer of another mode with no picture (an output filtered by moderation comes back, per the pages, "
        "as DataInspectionFailed), nor what such an answer looks like. The fault imitates the plainest reading.",
    ),
]

ASSUMPTIONS: dict[str, Assumption] = {a.key: a for a in _TABLE}


def table() -> list[dict[str, Any]]:
    return [asdict(a) for a in _TABLE]
