// The API key from ComfyUI's settings page: Settings -> "Wan (DashScope)" -> one key per region, plus one
// for all regions.
//
// A key typed here goes to the pack's own route (nodes/key_route.py), which keeps it server-side in the
// pack's state folder with owner-only permissions. It is write-only: the page only ever learns back "set,
// ends …abcd" or "not set". The settings are custom-rendered and never call the setting's own setter, so
// ComfyUI's settings store (user/default/comfy.settings.json) never holds a key. Keys from the environment
// or a key file win over these (the README lists the order); each row says when one does. Plain
// JavaScript, no build step.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const ROUTE = "/wan_image/api_keys";
const SCOPES = [
  ["all", "All regions"],
  ["singapore", "Singapore"],
  ["virginia", "Virginia (US)"],
  ["beijing", "Beijing (China mainland)"],
];

const TOOLTIP = "Kept by the pack on this server (its state folder, readable by you only); never saved in " +
  "workflows, pictures or ComfyUI's settings file. Environment variables and key files win over it.";

const TEXT = {
  en: {
    notSet: "not set",
    set: (ends) => `set, ends …${ends}`,
    placeholder: "paste the key (sk-…)",
    save: "Save",
    clear: "Remove",
    saved: "saved",
    removed: "removed",
    usedInstead: (what) => `used instead for this region: ${what}`,
    failed: "could not reach ComfyUI",
  },
  zh: {
    notSet: "未设置",
    set: (ends) => `已设置，末尾 …${ends}`,
    placeholder: "粘贴密钥 (sk-…)",
    save: "保存",
    clear: "删除",
    saved: "已保存",
    removed: "已删除",
    usedInstead: (what) => `此地域实际使用：${what}`,
    failed: "无法连接 ComfyUI",
  },
};

function locale() {
  try {
    const value = app.extensionManager?.setting?.get?.("Comfy.Locale") || app.ui?.settings?.getSettingValue?.("Comfy.Locale");
    if (value) return String(value).startsWith("zh") ? "zh" : "en";
  } catch {}
  return (navigator.language || "en").startsWith("zh") ? "zh" : "en";
}

const t = () => TEXT[locale()];

async function call(method, body, query = "") {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await api.fetchApi(ROUTE + query, options);
  let data = {};
  try {
    data = await response.json();
  } catch {}
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function showStatus(row, data) {
  const scope = row.dataset.wanScope;
  const entry = (data.scopes || []).find((s) => s.scope === scope);
  const status = row.querySelector(".wan-key-status");
  status.textContent = entry && entry.set ? t().set(entry.ends) : t().notSet;
  row.dataset.wanSet = entry && entry.set ? "true" : "false";
  const note = row.querySelector(".wan-key-note");
  const winner = scope === "all" ? null : (data.overridden_by || {})[scope];
  note.textContent = winner ? t().usedInstead(winner) : "";
}

function renderKeyRow(scope) {
  const row = document.createElement("div");
  row.className = "wan-key-row";
  row.dataset.wanScope = scope;
  row.style.cssText = "display:flex;flex-direction:column;gap:4px;min-width:320px";
  const line = document.createElement("div");
  line.style.cssText = "display:flex;gap:6px;align-items:center";
  const input = document.createElement("input");
  input.type = "password";
  input.className = "wan-key-input p-inputtext";
  input.autocomplete = "off";
  input.spellcheck = false;
  input.placeholder = t().placeholder;
  input.style.cssText = "flex:1;min-width:180px";
  const save = document.createElement("button");
  save.className = "wan-key-save p-button p-button-sm";
  save.textContent = t().save;
  const clear = document.createElement("button");
  clear.className = "wan-key-clear p-button p-button-sm p-button-secondary";
  clear.textContent = t().clear;
  line.append(input, save, clear);
  const status = document.createElement("span");
  status.className = "wan-key-status";
  status.style.cssText = "font-size:12px;opacity:0.85";
  const note = document.createElement("span");
  note.className = "wan-key-note";
  note.style.cssText = "font-size:12px;opacity:0.7";
  const message = document.createElement("span");
  message.className = "wan-key-message";
  message.style.cssText = "font-size:12px";
  row.append(line, status, note, message);

  const report = (text, bad) => {
    message.textContent = text;
    message.style.color = bad ? "var(--error-text, #f66)" : "";
  };
  const submit = async () => {
    const key = input.value;
    if (!key.trim()) return;
    save.disabled = true;
    try {
      const data = await call("POST", { region: scope, key });
      input.value = "";  // the page keeps no copy
      showStatus(row, data);
      report(t().saved, false);
    } catch (error) {
      report(error.message, true);
    } finally {
      save.disabled = false;
    }
  };
  save.addEventListener("click", submit);
  input.addEventListener("keydown", (event) => {
    event.stopPropagation();  // typing a key must not trigger the canvas's shortcuts
    if (event.key === "Enter") submit();
  });
  clear.addEventListener("click", async () => {
    try {
      showStatus(row, await call("DELETE", undefined, `?region=${scope}`));
      report(t().removed, false);
    } catch (error) {
      report(error.message, true);
    }
  });
  call("GET").then((data) => showStatus(row, data)).catch(() => report(t().failed, true));
  return row;
}

app.registerExtension({
  name: "comfyui-wan-image.api-keys",
  settings: SCOPES.map(([scope, en], i) => ({
    id: `WanImage.ApiKey.${scope}`,
    category: ["Wan (DashScope)", "API key", scope],
    // Chinese names: locales/zh/settings.json (the page translates settings by their id).
    name: `API key: ${en}`,
    tooltip: TOOLTIP,
    // Rendered here, never stored by the settings store: the setter is deliberately not used.
    type: () => renderKeyRow(scope),
    defaultValue: "",
    sortOrder: 10 * (SCOPES.length - i),  // listed in this order (the page shows higher first)
  })),
});
