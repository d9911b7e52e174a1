// The shapes a generated dashboard must have, built from Grafana 11.6's own published
// types (@grafana/schema@11.6.0). The generator (generate.py) writes one .ts file per
// dashboard that assigns each panel, as an object literal, to `Panels[<plugin id>]`,
// so `tsc --noEmit --strict` reports any key a type does not declare (excess-property
// checks), any value outside an enum and any value of the wrong type.
import type {
  Dashboard,
  FieldConfig,
  FieldConfigSource,
  Panel,
  VariableModel,
} from "@grafana/schema";
import type * as barchart from "@grafana/schema/dist/esm/raw/composable/barchart/panelcfg/x/BarChartPanelCfg_types.gen.js";
import type * as bargauge from "@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen.js";
import type * as gauge from "@grafana/schema/dist/esm/raw/composable/gauge/panelcfg/x/GaugePanelCfg_types.gen.js";
import type * as heatmap from "@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen.js";
import type * as histogram from "@grafana/schema/dist/esm/raw/composable/histogram/panelcfg/x/HistogramPanelCfg_types.gen.js";
import type * as piechart from "@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen.js";
import type * as stat from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen.js";
import type * as statetimeline from "@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen.js";
import type * as table from "@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen.js";
import type * as text from "@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen.js";
import type * as timeseries from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen.js";

// JSON holds an enum's values, never its TypeScript members: a string enum becomes the
// union of its values (`${E}`), so "table" is accepted where LegendDisplayMode is
// expected and "tabel" is not. Numeric enums already accept their literal values.
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer E>
      ? Array<Json<E>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

// A panel of one plugin: Grafana's Panel with `options` and `fieldConfig.defaults.custom`
// typed by the plugin's own Options and FieldConfig (the Panel type leaves both open).
// A plugin without field config of its own takes no custom keys.
type PanelOf<Kind extends string, Options, Custom = Record<string, never>> = Json<
  Omit<Panel, "type" | "options" | "fieldConfig"> & {
    type: Kind;
    options: Options;
    fieldConfig: Omit<FieldConfigSource, "defaults"> & {
      defaults: Omit<FieldConfig, "custom"> & { custom?: Custom };
    };
  }
>;

// Every panel plugin the check covers, by plugin id, with Grafana's types for it.
export interface Panels {
  barchart: PanelOf<"barchart", barchart.Options, barchart.FieldConfig>;
  bargauge: PanelOf<"bargauge", bargauge.Options>;
  gauge: PanelOf<"gauge", gauge.Options>;
  heatmap: PanelOf<"heatmap", heatmap.Options, heatmap.FieldConfig>;
  histogram: PanelOf<"histogram", histogram.Options, histogram.FieldConfig>;
  piechart: PanelOf<"piechart", piechart.Options, piechart.FieldConfig>;
  stat: PanelOf<"stat", stat.Options>;
  "state-timeline": PanelOf<"state-timeline", statetimeline.Options, statetimeline.FieldConfig>;
  table: PanelOf<"table", table.Options, table.FieldConfig>;
  text: PanelOf<"text", text.Options>;
  timeseries: PanelOf<"timeseries", timeseries.Options, timeseries.FieldConfig>;
}

// A panel whose plugin has no types in the package: only the dashboard model's Panel
// applies (options and custom field config stay open). generate.py lists each one.
export type UntypedPanel = Json<Panel>;

export type Variable = Json<VariableModel>;

// The dashboard model; panels are checked one by one (above), so here any panel will do.
export type Board = Json<Omit<Dashboard, "panels" | "templating">> & {
  panels: Array<Panels[keyof Panels] | UntypedPanel>;
  templating: { list: Array<Variable> };
};
