// settings.js: the settings panel. The presets, the ranges and the defaults
// all come from GET /api/presets, so the page and the server cannot
// disagree on them; a change calls onChange({preset?, system?, settings?})
// (the page PATCHes the current conversation with it).

const FIELDS = [
  { key: 'max_tokens', label: 'Max new tokens', step: 1 },
  { key: 'max_images', label: 'Max images per message', step: 1 },
  { key: 'temperature', label: 'Temperature', step: 0.05 },
  { key: 'top_p', label: 'Top-p', step: 0.01 },
  { key: 'top_k', label: 'Top-k', step: 1 },
  { key: 'repetition_penalty', label: 'Repetition penalty', step: 0.01 },
];

const decimals = (step) => (String(step).split('.')[1] || '').length;

export class SettingsPanel {
  constructor({ presetSelect, systemInput, slidersEl, onChange }) {
    this.presetSelect = presetSelect;
    this.systemInput = systemInput;
    this.slidersEl = slidersEl;
    this.onChange = onChange;
    this.presets = [];
    this.ranges = {};
    this.inputs = {};
    this.systemTimer = 0;
  }

  // catalog: the body of GET /api/presets.
  init(catalog) {
    this.presets = catalog.presets || [];
    this.ranges = catalog.settings || {};
    this.presetSelect.replaceChildren(...this.presets.map((p) => {
      const o = document.createElement('option');
      o.value = p.key;
      o.textContent = p.label;
      return o;
    }));
    this.presetSelect.addEventListener('change', () => {
      const p = this.presets.find((x) => x.key === this.presetSelect.value);
      // Custom keeps whatever prompt is there, to be edited; any other preset fills it in.
      if (p && p.key !== 'custom') this.systemInput.value = p.system;
      this.onChange({ preset: this.presetSelect.value, system: this.systemInput.value });
    });
    this.systemInput.addEventListener('input', () => {
      clearTimeout(this.systemTimer);
      this.systemTimer = setTimeout(() => this.onChange({ system: this.systemInput.value }), 500);
    });
    this.slidersEl.replaceChildren(...FIELDS.filter((f) => this.ranges[f.key]).map((f) => this.slider(f)));
    this.reset();
  }

  slider(f) {
    const r = this.ranges[f.key];
    const step = Number.isInteger(r.min) && Number.isInteger(r.max) && f.step >= 1 ? 1 : f.step;
    const wrap = document.createElement('div');
    wrap.className = 'slider';
    const id = `set-${f.key}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = f.label;
    const range = document.createElement('input');
    range.type = 'range';
    const num = document.createElement('input');
    num.type = 'number';
    num.id = id;
    for (const el of [range, num]) {
      el.min = r.min;
      el.max = r.max;
      el.step = step;
    }
    range.setAttribute('aria-label', f.label);
    range.tabIndex = -1; // the number box is the keyboard's way in; the slider is for the mouse
    const clamp = (v) => {
      let x = Number(v);
      if (!Number.isFinite(x)) x = r.default;
      x = Math.min(r.max, Math.max(r.min, x));
      return Number(x.toFixed(decimals(step)));
    };
    const commit = (v) => {
      const x = clamp(v);
      range.value = x;
      num.value = x;
      this.onChange({ settings: this.settings() });
    };
    range.addEventListener('input', () => { num.value = range.value; });
    range.addEventListener('change', () => commit(range.value));
    num.addEventListener('change', () => commit(num.value));
    this.inputs[f.key] = { range, num, clamp };
    const row = document.createElement('div');
    row.className = 'slider-row';
    row.append(range, num);
    const hint = document.createElement('span');
    hint.className = 'slider-range';
    hint.textContent = `${r.min}–${r.max}, default ${r.default}`;
    wrap.append(label, row, hint);
    return wrap;
  }

  settings() {
    const out = {};
    for (const [key, { num, clamp }] of Object.entries(this.inputs)) out[key] = clamp(num.value);
    return out;
  }

  value() {
    return { preset: this.presetSelect.value, system: this.systemInput.value, settings: this.settings() };
  }

  // The defaults: the first preset (General Assistant) and the ranges' defaults.
  reset() {
    const first = this.presets[0];
    this.load({
      preset: first ? first.key : '',
      system: first ? first.system : '',
      settings: Object.fromEntries(Object.entries(this.ranges).map(([k, r]) => [k, r.default])),
    });
  }

  // Shows a conversation's preset, system prompt and settings.
  load({ preset, system, settings }) {
    clearTimeout(this.systemTimer);
    if (this.presets.some((p) => p.key === preset)) this.presetSelect.value = preset;
    else if (this.presets.some((p) => p.key === 'custom')) this.presetSelect.value = 'custom';
    this.systemInput.value = system ?? '';
    for (const [key, { range, num, clamp }] of Object.entries(this.inputs)) {
      const v = settings && settings[key] !== undefined ? settings[key] : this.ranges[key].default;
      range.value = clamp(v);
      num.value = clamp(v);
    }
  }

  maxImages() {
    return this.inputs.max_images ? this.inputs.max_images.clamp(this.inputs.max_images.num.value) : -1;
  }
}
