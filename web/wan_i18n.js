// Chinese (and any other) names for this pack's nodes in ComfyUI's page.
//
// ComfyUI serves every pack's locales/<lang>/main.json at /api/i18n, and its frontend merges them at start.
// Frontend 1.32.9 then loads its own bundle for a non-English locale and replaces that locale's messages,
// so the pack's names are lost (core nodes stay translated, ours fall back to English). Work around it:
// read the same file for the current locale and put the names into the node definitions themselves,
// before the nodes are registered; the frontend's fallback then shows them.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PACK_NODES = new Set(["WanImageEdit", "WanTextToImage", "WanSequential", "WanInterleave", "WanBBox",
  "WanPromptList", "WanColorPalette", "WanComparisonSheet"]);
let translations = null;

async function currentLocale() {
  try {
    const value = await api.getSetting("Comfy.Locale");
    if (value) return value;
  } catch {}
  return (navigator.language || "en").split("-")[0];
}

app.registerExtension({
  name: "comfyui-wan-image.i18n",
  async init() {
    const locale = await currentLocale();
    if (!locale || locale.startsWith("en")) return;
    try {
      const all = await (await api.fetchApi("/i18n")).json();
      translations = (all[locale] || all[locale.split("-")[0]] || {}).nodeDefs || null;
    } catch (error) {
      console.warn("comfyui-wan-image: no translations", error);
    }
  },
  async addCustomNodeDefs(defs) {
    if (!translations) return;
    for (const name of PACK_NODES) {
      const def = defs[name];
      const tr = translations[name];
      if (!def || !tr) continue;
      if (tr.display_name) def.display_name = tr.display_name;
      if (tr.description) def.description = tr.description;
      for (const group of ["required", "optional"]) {
        for (const [input, spec] of Object.entries(def.input?.[group] || {})) {
          const t = tr.inputs?.[input];
          if (t?.tooltip && spec?.[1]) spec[1].tooltip = t.tooltip;
        }
      }
    }
  },
});
