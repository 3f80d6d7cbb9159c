// Draw boxes on the pictures of a "Wan Box Edit" (WanBBox) node.
//
// The node gets a small editor: the picture connected to `image` (or `image_2`, ... picked with the tabs),
// on which the user drags out up to 2 boxes per picture, drags a box to move it, and double-clicks a box
// (or selects it and presses Delete) to remove it. The boxes are written into the node's `boxes` widget as
// JSON in each picture's own pixels — [[x1, y1, x2, y2], ...] per picture — so the workflow file keeps them
// and the Python side stays the single validator. Plain JavaScript, no build step.
//
// Pictures are found by following each image input upstream to a LoadImage node (its file is served by
// /view). A picture made by other nodes is shown once the graph has run (the node sends its inputs back).

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const MAX_BOXES = 2;
const MAX_PICTURES = 9;
const inputName = (i) => (i === 0 ? "image" : `image_${i + 1}`);

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

function upstreamLoadImage(node, slotName) {
  const slot = node.inputs?.findIndex((inp) => inp.name === slotName);
  if (slot === undefined || slot < 0) return null;
  const link = node.getInputLink ? node.getInputLink(slot) : app.graph.links[node.inputs[slot].link];
  if (!link) return null;
  const source = app.graph.getNodeById(link.origin_id);
  if (!source) return null;
  if (source.type === "LoadImage" || source.comfyClass === "LoadImage") {
    const file = source.widgets?.find((w) => w.name === "image")?.value;
    if (!file) return null;
    const [subfolder, name] = file.includes("/") ? [file.slice(0, file.lastIndexOf("/")), file.slice(file.lastIndexOf("/") + 1)] : ["", file];
    return api.apiURL(`/view?filename=${encodeURIComponent(name)}&type=input&subfolder=${encodeURIComponent(subfolder)}`);
  }
  return null;
}

class BoxEditor {
  constructor(node) {
    this.node = node;
    this.current = 0;
    this.images = {};
    this.drag = null;
    this.selected = null;
    this.root = document.createElement("div");
    this.root.className = "wan-bbox-editor";
    this.root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;";
    this.tabs = document.createElement("div");
    this.tabs.style.cssText = "display:flex;gap:4px;flex-wrap:wrap;font:12px sans-serif;";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "wan-bbox-canvas";
    this.canvas.style.cssText = "width:100%;flex:1;min-height:160px;background:#222;cursor:crosshair;border-radius:4px;";
    this.canvas.tabIndex = 0;
    this.status = document.createElement("div");
    this.status.style.cssText = "font:11px sans-serif;opacity:0.75;";
    this.root.append(this.tabs, this.canvas, this.status);
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("dblclick", (e) => this.remove(e));
    this.canvas.addEventListener("keydown", (e) => {
      if ((e.key === "Delete" || e.key === "Backspace") && this.selected !== null) {
        this.boxes()[this.selected] && this.boxes().splice(this.selected, 1);
        this.selected = null;
        this.save();
      }
    });
    new ResizeObserver(() => this.draw()).observe(this.canvas);
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
  }

  refresh() {
    this.tabs.replaceChildren();
    const connected = [];
    for (let i = 0; i < MAX_PICTURES; i++) {
      const inp = this.node.inputs?.find((x) => x.name === inputName(i));
      if (inp && inp.link != null) connected.push(i);
    }
    if (!connected.includes(this.current)) this.current = connected[0] ?? 0;
    for (const i of connected) {
      const b = document.createElement("button");
      b.textContent = `image ${i + 1}`;
      b.className = "wan-bbox-tab";
      b.style.cssText = `padding:1px 6px;border-radius:3px;border:1px solid #666;background:${i === this.current ? "#4a6" : "#333"};color:#eee;`;
      b.onclick = () => { this.current = i; this.refresh(); };
      this.tabs.append(b);
    }
    const url = upstreamLoadImage(this.node, inputName(this.current)) || this.node.__wanPreviews?.[this.current];
    if (url && this.images[this.current]?.src !== url) {
      const img = new Image();
      img.onload = () => this.draw();
      img.src = url;
      this.images[this.current] = img;
    }
    this._all = null;
    this.draw();
  }

  layout() {
    const img = this.images[this.current];
    const rect = this.canvas.getBoundingClientRect();
    if (!img?.naturalWidth || !rect.width) return null;
    const scale = Math.min(rect.width / img.naturalWidth, rect.height / img.naturalHeight);
    const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
    return { img, rect, scale, ox: (rect.width - w) / 2, oy: (rect.height - h) / 2, w, h };
  }

  toImage(e) {
    const l = this.layout();
    if (!l) return null;
    const x = (e.clientX - l.rect.left - l.ox) / l.scale;
    const y = (e.clientY - l.rect.top - l.oy) / l.scale;
    return {
      x: Math.max(0, Math.min(l.img.naturalWidth, Math.round(x))),
      y: Math.max(0, Math.min(l.img.naturalHeight, Math.round(y))),
    };
  }

  hit(p) {
    const boxes = this.boxes();
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
      this.status.textContent = "At most 2 boxes per picture: double-click one to remove it.";
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
      const dx = Math.max(-x1, Math.min(l.img.naturalWidth - x2, p.x - this.drag.start.x));
      const dy = Math.max(-y1, Math.min(l.img.naturalHeight - y2, p.y - this.drag.start.y));
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
    const rect = c.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    c.width = Math.max(1, Math.round(rect.width * ratio));
    c.height = Math.max(1, Math.round(rect.height * ratio));
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, rect.width, rect.height);
    const l = this.layout();
    if (!l) {
      g.fillStyle = "#aaa";
      g.font = "12px sans-serif";
      g.fillText("Connect a Load Image node to draw boxes", 8, 20);
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
    this.status.textContent =
      `image ${this.current + 1}: ${l.img.naturalWidth}x${l.img.naturalHeight} px, ${boxes.length}/${MAX_BOXES} boxes — ` +
      "drag to draw or move, double-click to remove";
  }
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
  },
  async setup() {
    // A LoadImage whose picture changes updates the editors that show it.
    api.addEventListener("graphChanged", () => {
      for (const node of app.graph?._nodes || []) node.__wanBoxEditor?.refresh();
    });
  },
});
