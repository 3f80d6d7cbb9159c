// The estimated cost of a run, on the node, before anything is queued.
//
// Where ComfyUI has price badges (v0.33.0 and later: a node's schema carries `price_badge`, a JSONata
// expression over its widgets), the pack's billing nodes declare one, generated from the one price table
// (api/money/pricing.py). ComfyUI's page evaluates and draws such badges only for nodes whose class data says
// `api_node`. Declaring that in the schema would also put the nodes behind the page's "sign in to comfy.org
// to run partner nodes" gate (frontends from about 1.5x), which would stop users of this pack, who have a
// DashScope key and no comfy.org account. So the schema does not say it; instead, the class data of each
// node that declares a badge is marked here, as each node class is registered. The page's badge code reads
// exactly that (node.constructor.nodeData), while its node library and run gate read their own copy of
// the definitions, which stays unmarked. Hosts without price badges (0.3.75) declare none: nothing is
// marked and the nodes load as before. Free nodes declare no badge.

import { app } from "../../scripts/app.js";

const BILLED = new Set(["WanImageEdit", "WanTextToImage", "WanSequential", "WanInterleave", "WanBBox"]);

function markForBadge(nodeData) {
  if (nodeData && BILLED.has(nodeData.name) && nodeData.price_badge) nodeData.api_node = true;
}

app.registerExtension({
  name: "comfyui-wan-image.price-badge",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!BILLED.has(nodeData?.name) || !nodeData.price_badge) return;
    // The page builds the class data (its own object, from nodeData) right after this hook and assigns it
    // to the static `nodeData`: catch that assignment and mark the object assigned.
    let current = nodeType.nodeData;
    Object.defineProperty(nodeType, "nodeData", {
      configurable: true,
      enumerable: true,
      get: () => current,
      set: (value) => {
        markForBadge(value);
        current = value;
      },
    });
    markForBadge(current);
  },
});
