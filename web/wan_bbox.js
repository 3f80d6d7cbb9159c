// Draw boxes on the pictures of a "Wan Box Edit" (WanBBox) node.
//
// The node gets a small editor: one tab per picture the node sends, numbered as the service numbers them
// (web/wan_pictures.js, the same rule as the Python side: every picture of `image`'s batch, then
// `image_2`'s, ...; unconnected inputs take no number). On a picture the user drags out up to 2 boxes,
// drags a box to move it, and double-clicks a box (or selects it and presses Delete) to remove it. The boxes
// are written into the node's `boxes` widget as JSON in each picture's own pixels — one list per picture, in
// that order — so the workflow file keeps them and the Python side stays the single validator.
//
// Where the pictures come from:
// - an input fed by a Load Image node: its file (served by /view), always current;
// - any other input: the pictures the node last sent (WanBBox returns them as UI previews after a run), or
//   those of a "Preview inputs" pass: the button queues only the nodes upstream of this one, with preview
//   outputs, so this node never runs and nothing is sent to the service. Upstream Wan service nodes are
//   never run by a preview (they are billed): run the graph once instead.
// The editor says which source each picture comes from. Plain JavaScript, no build step.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { numberPictures } from "./wan_pictures.js";

const MAX_BOXES = 2;
const MAX_PICTURES = 9;
const inputName = (i) => (i === 0 ? "image" : `image_${i + 1}`);
// Nodes that call the paid service: a preview pass must not run them.
const BILLED = new Set(["WanImageEdit", "WanTextToImage", "WanSequential", "WanInterleave", "WanBBox"]);

function parseBoxes(text) {
  try {
    const value = JSON.parse(text || "[]");
    if (!Array.isArray(value)) return [];
    // One picture's boxes written without the outer list: [[x1,y1,x2,y2], ...]
    if (value.length && value.every((b) => Array.isArray(b) && b.length === 4 && b.every((c) => typeof c === "number"))) {
      return [value];
    }
    return value.map((boxes) => (Array.isArray(boxes) ? boxes.filter((b) => Array.isArray(b) && b.length === 4) : []));
  } catch {
    return [];
  }
}

const graphNodes = () => app.graph?._nodes || app.graph?.nodes || [];

function viewURL(file) {
  return api.apiURL(`/view?filename=${encodeURIComponent(file.filename)}&type=${file.type || "temp"}` +
    `&subfolder=${encodeURIComponent(file.subfolder || "")}`);
}

// The node and output slot that feed `slotName`, through legacy Reroute nodes.
function upstream(node, slotName) {
  let target = node;
  let slot = node.inputs?.findIndex((inp) => inp.name === slotName);
  for (let hops = 0; hops < 32; hops++) {
    if (slot === undefined || slot < 0) return null;
    const linkId = target.inputs[slot]?.link;
    if (linkId == null) return null;
    const graph = target.graph || app.graph;  // the node's own graph: it may sit inside a subgraph
    const link = target.getInputLink ? target.getInputLink(slot) : graph.links[linkId];
    if (!link) return null;
    const source = graph.getNodeById(link.origin_id);
    if (!source) return null;
    if (source.type !== "Reroute") return { node: source, slot: link.origin_slot, key: `${source.id}:${link.origin_slot}` };
    target = source;
    slot = 0;
  }
  return null;
}

function loadImageFile(source) {
  if (source.type !== "LoadImage" && source.comfyClass !== "LoadImage") return null;
  const file = source.widgets?.find((w) => w.name === "image")?.value;
  if (!file) return null;
  const cut = file.lastIndexOf("/");
  return viewURL({ filename: file.slice(cut + 1), subfolder: cut < 0 ? "" : file.slice(0, cut), type: "input" });
}

// The editor's own words in the page's language (English, or Chinese when ComfyUI is set to it).
function zh() {
  try {
    return String(app.extensionManager?.setting?.get("Comfy.Locale") || navigator.language || "").startsWith("zh");
  } catch {
    return false;
  }
}
const L = (en, zhText) => (zh() ? zhText : en);

const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

class BoxEditor {
  constructor(node) {
    this.node = node;
    this.current = 0;        // index into this.pictures (picture number - 1)
    this.pictures = [];      // numbered pictures: {picture, input, index, label, url, width, height, source}
    this.images = {};        // url -> HTMLImageElement
    this.drag = null;
    this.selected = null;
    this.root = document.createElement("div");
    this.root.className = "wan-bbox-editor";
    this.root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;";
    const bar = document.createElement("div");
    bar.style.cssText = "display:flex;gap:4px;align-items:center;";
    this.tabs = document.createElement("div");
    this.tabs.style.cssText = "display:flex;gap:4px;flex-wrap:wrap;font:12px sans-serif;flex:1;";
    this.previewButton = this.button(L("Preview inputs", "预览输入"), "wan-bbox-preview",
      L("Run only the nodes before this one to show their pictures here. Nothing is sent to the service.",
        "只运行本节点之前的节点,把它们的图显示在这里。不向服务发送任何内容。"),
      () => this.previewInputs());
    this.enlargeButton = this.button("⤢", "wan-bbox-enlarge", L("Open a large editor", "打开大编辑器"),
      () => openDialog(this.node));
    bar.append(this.tabs, this.previewButton, this.enlargeButton);
    this.source = document.createElement("div");
    this.source.className = "wan-bbox-source";
    this.source.style.cssText = "font:11px sans-serif;color:#9cf;";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "wan-bbox-canvas";
    this.canvas.style.cssText = "width:100%;flex:1;min-height:160px;background:#222;cursor:crosshair;border-radius:4px;touch-action:none;";
    this.canvas.tabIndex = 0;
    this.status = document.createElement("div");
    this.status.className = "wan-bbox-status";
    this.status.style.cssText = "font:11px sans-serif;opacity:0.75;";
    this.root.append(bar, this.source, this.canvas, this.status);
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("dblclick", (e) => this.remove(e));
    // The canvas and Vue renderers must not also start a node drag or a canvas pan from these.
    for (const kind of ["mousedown", "mousemove", "mouseup", "wheel", "contextmenu"]) {
      this.canvas.addEventListener(kind, (e) => e.stopPropagation());
    }
    this.canvas.addEventListener("keydown", (e) => {
      if ((e.key === "Delete" || e.key === "Backspace") && this.selected !== null) {
        e.preventDefault();
        e.stopPropagation();  // else the graph deletes the selected node
        this.all();
        this.boxes()?.splice(this.selected, 1);
        this.selected = null;
        this.save();
      }
    });
    new ResizeObserver(() => this.draw()).observe(this.canvas);
  }

  button(text, className, title, onclick) {
    const b = document.createElement("button");
    b.textContent = text;
    b.className = className;
    b.title = title;
    b.style.cssText = "padding:1px 6px;border-radius:3px;border:1px solid #666;background:#333;color:#eee;font:12px sans-serif;cursor:pointer;";
    b.addEventListener("pointerdown", (e) => e.stopPropagation());
    b.onclick = (e) => { e.stopPropagation(); onclick(); };
    return b;
  }

  widget() {
    return this.node.widgets?.find((w) => w.name === "boxes");
  }

  all() {
    const parsed = parseBoxes(this.widget()?.value);
    while (parsed.length <= this.current) parsed.push([]);
    this._all = parsed;
    return parsed;
  }

  boxes() {
    return (this._all || this.all())[this.current];
  }

  save() {
    const all = this._all || this.all();
    // Trailing pictures without boxes are dropped; the Python side pads to the number of pictures.
    let last = all.length;
    while (last > 0 && all[last - 1].length === 0) last--;
    const value = last === 0 ? "" : JSON.stringify(all.slice(0, last));
    const w = this.widget();
    if (w) {
      w.value = value;
      w.callback?.(value);
    }
    this.node.setDirtyCanvas?.(true, true);
    this.draw();
    this.onchange?.();
  }

  // Each image input: how many pictures it sends and where they are shown from; numbered by the shared rule.
  collect() {
    const previews = this.node.__wanPreviews || {};
    const inputs = [];
    const shown = {};
    this.unknown = [];
    for (let i = 0; i < MAX_PICTURES; i++) {
      const name = inputName(i);
      const from = upstream(this.node, name);
      if (!from) { inputs.push([name, null]); continue; }
      const file = loadImageFile(from.node);
      const seen = previews[name];
      if (file) {
        inputs.push([name, 1]);
        shown[name] = [{ url: file, source: L(`from ${from.node.title || "Load Image"}`, `来自 ${from.node.title || "加载图像"}`) }];
      } else if (seen && seen.key === from.key) {
        inputs.push([name, seen.pictures.length]);
        shown[name] = seen.pictures.map((p) => ({ ...p, source: L(`${seen.how} at ${clock(seen.at)}`, `${seen.how},${clock(seen.at)}`) }));
      } else {
        // Unknown until previewed or run: how many pictures it holds decides the numbers of all after it.
        this.unknown.push({ name, title: from.node.title || from.node.type, billed: BILLED.has(from.node.type) });
        break;
      }
    }
    const pictures = numberPictures(inputs).map((p) => ({ ...p, ...shown[p.input][p.index] }));
    return pictures;
  }

  refresh() {
    this.pictures = this.collect();
    if (this.current >= this.pictures.length) this.current = Math.max(0, this.pictures.length - 1);
    // Rebuilt only when they change: the page refreshes editors on every graph change, and a tab replaced
    // under the pointer would lose the click.
    const signature = JSON.stringify([this.current, this.pictures.map((p) => [p.label, p.source])]);
    if (signature !== this._tabs) this.tabs.replaceChildren();
    if (signature !== this._tabs) this.pictures.forEach((p, k) => {
      const b = document.createElement("button");
      b.textContent = `${p.picture}: ${p.label}`;
      b.className = "wan-bbox-tab";
      b.dataset.picture = p.picture;
      b.title = L(`picture ${p.picture} as the service numbers it: ${p.label}, ${p.source}`,
        `服务看到的第 ${p.picture} 张图:${p.label},${p.source}`);
      b.style.cssText = `padding:1px 6px;border-radius:3px;border:1px solid #666;background:${k === this.current ? "#4a6" : "#333"};color:#eee;`;
      b.addEventListener("pointerdown", (e) => e.stopPropagation());
      b.onclick = (e) => { e.stopPropagation(); this.current = k; this.selected = null; this.refresh(); };
      this.tabs.append(b);
    });
    this._tabs = signature;
    const pic = this.pictures[this.current];
    if (pic?.url && !this.images[pic.url]) {
      const img = new Image();
      img.onload = () => { this.draw(); this.onchange?.(); };
      img.src = pic.url;
      this.images[pic.url] = img;
    }
    const missing = this.unknown.map((u) => u.billed
      ? L(`${u.name} comes from ${u.title}, a billed Wan node: run the graph once, then its pictures show here.`,
        `${u.name} 来自 ${u.title}(计费的万相节点):请先运行一次工作流,之后它的图显示在这里。`)
      : L(`${u.name} comes from ${u.title}: press "Preview inputs" (runs only the nodes before this one, sends ` +
        "nothing to the service) or run the graph to see its pictures here.",
        `${u.name} 来自 ${u.title}:点击“预览输入”(只运行本节点之前的节点,不向服务发送任何内容)或运行工作流,` +
        "它的图就会显示在这里。"));
    const shownAs = pic && L(`picture ${pic.picture} (${pic.label}) ${pic.source}`, `第 ${pic.picture} 张图(${pic.label})${pic.source}`);
    this.source.textContent = [shownAs || "", ...missing,
      this.note || ""].filter(Boolean).join(" · ");
    this._all = null;
    this.draw();
    this.onchange?.();
  }

  async previewInputs() {
    const own = String(this.node.id);
    this.note = L("previewing the inputs…", "正在预览输入…");
    this.refresh();
    try {
      const { output } = await app.graphToPrompt();
      const me = output[own];
      if (!me) throw new Error(L("this node is not in the prompt (muted or bypassed?)", "本节点不在提交内容中(已静音或绕过?)"));
      const prompt = {};
      const previews = {};
      const skipped = [];
      for (let i = 0; i < MAX_PICTURES; i++) {
        const name = inputName(i);
        const link = me.inputs[name];
        const from = upstream(this.node, name);
        if (!Array.isArray(link) || !from || loadImageFile(from.node)) continue;
        const part = {};
        const visit = (id) => {
          if (part[id]) return;
          const entry = output[id];
          if (!entry) throw new Error(`node ${id} is missing from the prompt`);
          part[id] = entry;
          for (const v of Object.values(entry.inputs || {})) if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string") visit(v[0]);
        };
        visit(String(link[0]));
        const billed = Object.values(part).find((e) => BILLED.has(e.class_type));
        if (billed) {
          skipped.push(L(`${name} (made by ${billed._meta?.title || billed.class_type}, billed)`,
            `${name}(由计费节点 ${billed._meta?.title || billed.class_type} 生成)`));
          continue;
        }
        Object.assign(prompt, part);
        const id = `wan_preview_${own}_${name}`;
        prompt[id] = { class_type: "PreviewImage", inputs: { images: link }, _meta: { title: `Wan preview ${name}` } };
        previews[id] = { name, key: from.key };
      }
      if (!Object.keys(previews).length) {
        this.note = skipped.length ? L(`not previewed: ${skipped.join(", ")}: run the graph once`, `未预览:${skipped.join("、")}:请先运行一次工作流`)
          : L("nothing to preview: every picture comes from Load Image", "无需预览:所有图都来自加载图像");
        this.refresh();
        return;
      }
      const res = await api.fetchApi("/prompt", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt, client_id: api.clientId }) });
      const queued = await res.json();
      if (res.status !== 200) throw new Error(JSON.stringify(queued.error || queued).slice(0, 300));
      const entry = await waitForHistory(queued.prompt_id);
      const at = Date.now();
      const store = (this.node.__wanPreviews ||= {});
      for (const [id, { name, key }] of Object.entries(previews)) {
        const images = entry.outputs?.[id]?.images || [];
        store[name] = { how: L("previewed (nothing sent)", "已预览(未发送)"), at, key,
          pictures: images.map((f, index) => ({ url: viewURL(f), index })) };
      }
      this.note = skipped.length ? L(`not previewed: ${skipped.join(", ")}: run the graph once`, `未预览:${skipped.join("、")}:请先运行一次工作流`) : "";
    } catch (error) {
      this.note = L(`preview failed: ${error.message || error}`, `预览失败:${error.message || error}`);
    }
    this.refresh();
  }

  picture() {
    const pic = this.pictures[this.current];
    const img = pic && this.images[pic.url];
    if (!img?.naturalWidth) return null;
    // Previews after a run may be smaller than the picture sent; boxes are in the sent picture's pixels.
    return { img, width: pic.width || img.naturalWidth, height: pic.height || img.naturalHeight };
  }

  layout() {
    const pic = this.picture();
    const rect = this.canvas.getBoundingClientRect();
    if (!pic || !rect.width) return null;
    // The page may be zoomed (the canvas scales DOM widgets with a CSS transform): map by the drawn size.
    const cssW = this.canvas.clientWidth || rect.width, cssH = this.canvas.clientHeight || rect.height;
    const zoom = rect.width / cssW;
    const scale = Math.min(cssW / pic.width, cssH / pic.height);
    const w = pic.width * scale, h = pic.height * scale;
    return { ...pic, rect, zoom, cssW, cssH, scale, ox: (cssW - w) / 2, oy: (cssH - h) / 2, w, h };
  }

  toImage(e) {
    const l = this.layout();
    if (!l) return null;
    const x = ((e.clientX - l.rect.left) / l.zoom - l.ox) / l.scale;
    const y = ((e.clientY - l.rect.top) / l.zoom - l.oy) / l.scale;
    return {
      x: Math.max(0, Math.min(l.width, Math.round(x))),
      y: Math.max(0, Math.min(l.height, Math.round(y))),
    };
  }

  hit(p) {
    const boxes = this.boxes() || [];
    for (let i = boxes.length - 1; i >= 0; i--) {
      const [x1, y1, x2, y2] = boxes[i];
      if (p.x >= x1 && p.x <= x2 && p.y >= y1 && p.y <= y2) return i;
    }
    return null;
  }

  down(e) {
    const p = this.toImage(e);
    if (!p) return;
    e.preventDefault();
    e.stopPropagation();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.canvas.focus();
    this.all();
    const i = this.hit(p);
    if (i !== null) {
      this.selected = i;
      this.drag = { kind: "move", index: i, start: p, box: [...this.boxes()[i]] };
    } else if (this.boxes().length < MAX_BOXES) {
      this.boxes().push([p.x, p.y, p.x, p.y]);
      this.selected = this.boxes().length - 1;
      this.drag = { kind: "new", index: this.selected, start: p };
    } else {
      this.status.textContent = L("At most 2 boxes per picture: double-click one to remove it.", "每张图最多 2 个框:双击一个框可删除。");
    }
    this.draw();
  }

  move(e) {
    if (!this.drag) return;
    const p = this.toImage(e);
    if (!p) return;
    e.preventDefault();
    e.stopPropagation();
    const l = this.layout();
    const box = this.boxes()[this.drag.index];
    if (this.drag.kind === "new") {
      const s = this.drag.start;
      box.splice(0, 4, Math.min(s.x, p.x), Math.min(s.y, p.y), Math.max(s.x, p.x), Math.max(s.y, p.y));
    } else {
      const [x1, y1, x2, y2] = this.drag.box;
      const dx = Math.max(-x1, Math.min(l.width - x2, p.x - this.drag.start.x));
      const dy = Math.max(-y1, Math.min(l.height - y2, p.y - this.drag.start.y));
      box.splice(0, 4, x1 + dx, y1 + dy, x2 + dx, y2 + dy);
    }
    this.draw();
  }

  up(e) {
    if (!this.drag) return;
    e.preventDefault();
    e.stopPropagation();
    const box = this.boxes()[this.drag.index];
    if (this.drag.kind === "new" && (box[2] - box[0] < 2 || box[3] - box[1] < 2)) {
      this.boxes().splice(this.drag.index, 1);  // a click, not a drag
      this.selected = null;
    }
    this.drag = null;
    this.save();
  }

  remove(e) {
    const p = this.toImage(e);
    const i = p && this.hit(p);
    if (i === null || i === undefined) return;
    e.preventDefault();
    e.stopPropagation();
    this.all();
    this.boxes().splice(i, 1);
    this.selected = null;
    this.save();
  }

  draw() {
    const c = this.canvas;
    const cssW = c.clientWidth, cssH = c.clientHeight;
    const ratio = (window.devicePixelRatio || 1) * (c.getBoundingClientRect().width / (cssW || 1) || 1);
    c.width = Math.max(1, Math.round(cssW * ratio));
    c.height = Math.max(1, Math.round(cssH * ratio));
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    const l = this.layout();
    if (!l) {
      g.fillStyle = "#aaa";
      g.font = "12px sans-serif";
      const lines = this.pictures.length ? [L("Loading the picture…", "正在加载图…")] :
        this.unknown.length ? [L("No picture yet: press \"Preview inputs\"", "还没有图:点击“预览输入”"),
          L("(nothing is sent to the service) or run the graph.", "(不向服务发送任何内容)或运行工作流。")] :
        [L("Connect a picture to `image` to draw boxes.", "把图连接到 image 即可画框。")];
      lines.forEach((t, i) => g.fillText(t, 8, 20 + 16 * i));
      this.status.textContent = "";
      return;
    }
    g.drawImage(l.img, l.ox, l.oy, l.w, l.h);
    const boxes = (this._all || this.all())[this.current] || [];
    boxes.forEach(([x1, y1, x2, y2], i) => {
      g.strokeStyle = i === this.selected ? "#ffdd33" : "#ff3344";
      g.lineWidth = 2;
      g.strokeRect(l.ox + x1 * l.scale, l.oy + y1 * l.scale, (x2 - x1) * l.scale, (y2 - y1) * l.scale);
      g.fillStyle = "rgba(255, 51, 68, 0.15)";
      g.fillRect(l.ox + x1 * l.scale, l.oy + y1 * l.scale, (x2 - x1) * l.scale, (y2 - y1) * l.scale);
    });
    const pic = this.pictures[this.current];
    this.status.textContent = L(
      `picture ${pic.picture}: ${l.width}x${l.height} px, ${boxes.length}/${MAX_BOXES} boxes — ` +
      "drag to draw or move, double-click to remove",
      `第 ${pic.picture} 张图:${l.width}x${l.height} 像素,${boxes.length}/${MAX_BOXES} 个框 — 拖动画框或移动,双击删除`);
  }
}

async function waitForHistory(promptId, timeoutMs = 300000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const entry = (await (await api.fetchApi(`/history/${promptId}`)).json())[promptId];
    const status = entry?.status?.status_str;
    if (status === "success") return entry;
    if (status === "error") {
      const error = entry.status.messages?.find(([kind]) => kind === "execution_error")?.[1];
      throw new Error(error ? `${error.node_type}: ${error.exception_message}` : L("the preview run failed", "预览运行失败"));
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(L("the preview run did not finish", "预览运行没有完成"));
}

// The same editor, large, in a dialog: for small nodes, and for renderers that cannot host the inline one.
function openDialog(node) {
  document.querySelector(".wan-bbox-dialog")?.remove();
  const overlay = document.createElement("div");
  overlay.className = "wan-bbox-dialog";
  overlay.style.cssText = "position:fixed;inset:0;z-index:10000;background:rgba(0,0,0,0.6);display:flex;align-items:center;justify-content:center;";
  const panel = document.createElement("div");
  panel.style.cssText = "width:min(90vw,1100px);height:min(88vh,860px);background:#1b1b1b;border:1px solid #555;border-radius:6px;padding:10px;display:flex;flex-direction:column;gap:6px;";
  const head = document.createElement("div");
  head.style.cssText = "display:flex;justify-content:space-between;align-items:center;color:#eee;font:13px sans-serif;";
  head.textContent = L(`${node.title || "Wan Box Edit"}: draw boxes`, `${node.title || "万相 框选编辑"}:画框`);
  const editor = new BoxEditor(node);
  editor.enlargeButton.remove();
  const close = editor.button(L("Done", "完成"), "wan-bbox-dialog-close", L("Close the editor", "关闭编辑器"),
    () => { overlay.remove(); node.__wanBoxEditor?.refresh(); });
  head.append(close);
  editor.root.style.flex = "1";
  editor.root.style.minHeight = "0";
  panel.append(head, editor.root);
  overlay.append(panel);
  overlay.addEventListener("keydown", (e) => { if (e.key === "Escape") close.click(); });
  document.body.append(overlay);
  editor.current = node.__wanBoxEditor?.current || 0;
  node.__wanDialogEditor = editor;
  editor.onchange = () => node.setDirtyCanvas?.(true, true);
  editor.refresh();
  return editor;
}

// The pictures a WanBBox sent, from its UI output after a run: grouped by input, numbered as sent.
function rememberSent(node, sent) {
  const byInput = {};
  const seen = new Set();
  for (const p of sent) {
    if (seen.has(p.picture)) continue;  // a list run (one per prompt) repeats the same pictures
    seen.add(p.picture);
    (byInput[p.input] ||= []).push({ url: viewURL(p), width: p.width, height: p.height, index: p.index });
  }
  const at = Date.now();
  const store = (node.__wanPreviews ||= {});
  for (const [name, pictures] of Object.entries(byInput)) {
    const from = upstream(node, name);
    if (from) store[name] = { how: L("as sent by the last run", "上次运行发送的图"), at, key: from.key, pictures };
  }
  node.__wanBoxEditor?.refresh();
  node.__wanDialogEditor?.refresh();
}

app.registerExtension({
  name: "comfyui-wan-image.bbox",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "WanBBox") return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      const editor = new BoxEditor(this);
      this.__wanBoxEditor = editor;
      this.addDOMWidget("box_editor", "wan_box_editor", editor.root, {
        serialize: false,
        getMinHeight: () => 260,
      });
      const size = this.computeSize?.();
      if (size) this.setSize([Math.max(this.size[0], 420), Math.max(this.size[1], size[1])]);
      setTimeout(() => editor.refresh(), 0);
      return result;
    };
    const connections = nodeType.prototype.onConnectionsChange;
    nodeType.prototype.onConnectionsChange = function () {
      const result = connections?.apply(this, arguments);
      this.__wanBoxEditor && setTimeout(() => this.__wanBoxEditor.refresh(), 0);
      return result;
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = configured?.apply(this, arguments);
      this.__wanBoxEditor && setTimeout(() => this.__wanBoxEditor.refresh(), 0);
      return result;
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const result = executed?.apply(this, arguments);
      if (output?.wan_sent?.length) rememberSent(this, output.wan_sent);
      return result;
    };
  },
  async setup() {
    // A LoadImage whose picture changes updates the editors that show it.
    api.addEventListener("graphChanged", () => {
      for (const node of graphNodes()) node.__wanBoxEditor?.refresh();
    });
  },
});

export { openDialog };
