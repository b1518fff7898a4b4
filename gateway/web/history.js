/**
 * History for the Logs page: earlier entries when the reader scrolls to the top (pages of
 * GET /api/logs/history going back until the start of retained history, which it then
 * names, with what expired), a jump to a time (`since`, read forward to the newest), the
 * channel picker (GET /api/logs/channels: what this sign-in may open) and the density.
 * Requests carry the page's cookie, as the stream does.
 */

const PAGE = 500; // entries one request asks for
const MOST = 100000; // entries a jump reads at most (the list holds as many)
const DENSITY = { compact: 20, normal: 24, roomy: 30 };

async function getJson(path, query) {
  const response = await fetch(`${path}?${query}`, { credentials: 'same-origin' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw Object.assign(new Error(body.error?.message ?? `HTTP ${response.status}`), {
      status: response.status,
    });
  }
  return body;
}

function startText(answer) {
  const lost = answer.lost_before_start ?? 0;
  if (!lost) return 'Start of retained history: nothing earlier was ever lost.';
  const expired = (answer.gaps_before_start ?? []).some((g) => g.reason === 'expired');
  const count = `${expired ? 'at least ' : ''}${lost.toLocaleString('en')}`;
  return `Start of retained history: ${count} earlier ${lost === 1 ? 'entry has' : 'entries have'} expired.`;
}

export class History {
  #view;
  #say;
  #channels = '';
  #before = '';
  #done = false;
  #busy = false;

  /** `say(text)`: shows a line above the list (empty: hides it). */
  constructor(view, say) {
    this.#view = view;
    this.#say = say;
  }

  /** The channels read from now on (what is loaded starts over). */
  reset(channels) {
    this.#channels = channels;
    this.#before = '';
    this.#done = false;
    this.#say('');
  }

  /** The page before the oldest loaded one (the first: the newest entries). */
  async earlier() {
    if (this.#busy || this.#done || !this.#channels) return;
    this.#busy = true;
    try {
      const query = new URLSearchParams({ channels: this.#channels, limit: String(PAGE) });
      if (this.#before) query.set('before', this.#before);
      const answer = await getJson('/api/logs/history', query);
      this.#view.prepend(answer.entries);
      this.#before = answer.before ?? '';
      this.#done = Boolean(answer.start);
      this.#say(this.#done ? startText(answer) : 'Loading earlier entries as you scroll up…');
    } catch (error) {
      this.#say(`Earlier entries could not be read: ${error.message}`);
    } finally {
      this.#busy = false;
    }
  }

  /** Show what was logged from `time` (a Date) on, then the newest; earlier above it. */
  async jumpTo(time) {
    if (this.#busy || !this.#channels) return;
    this.#busy = true;
    try {
      let query = new URLSearchParams({ channels: this.#channels, since: time.toISOString() });
      query.set('limit', '1000');
      const entries = [];
      let answer = await getJson('/api/logs/history', query);
      this.#before = answer.before ?? '';
      this.#done = Boolean(answer.start) && !answer.entries.length;
      for (;;) {
        entries.push(...answer.entries);
        if (answer.end || !answer.entries.length || entries.length >= MOST) break;
        query = new URLSearchParams({ channels: this.#channels, after: answer.after });
        query.set('limit', '1000');
        answer = await getJson('/api/logs/history', query);
      }
      this.#view.clear();
      this.#view.prepend(entries);
      this.#view.showStart();
      this.#say(`From ${time.toISOString()}: ${entries.length.toLocaleString('en')} entries.`);
    } catch (error) {
      this.#say(`Could not jump to that time: ${error.message}`);
    } finally {
      this.#busy = false;
    }
  }
}

/** Fill `select` with the channels this sign-in may open (newest activity first); picking
 * one calls `open(channel)`. */
export async function fillPicker(select, pattern, open) {
  select.addEventListener('change', () => {
    if (select.value) open(select.value);
    select.value = '';
  });
  try {
    const answer = await getJson('/api/logs/channels', new URLSearchParams({ pattern }));
    const options = answer.channels.map((c) => {
      const option = new Option(`${c.channel} (${c.entries.toLocaleString('en')})`, c.channel);
      option.title = `last activity ${c.last_activity}`;
      return option;
    });
    select.append(...options);
    document.getElementById('channel-list')?.append(...answer.channels.map((c) => new Option(c.channel)));
  } catch (error) {
    // Signed out: say how to go on; any other refusal (a listing past the broker's bound,
    // say) in its own words.
    select.options[0].textContent =
      error.status === 401 ? 'no channels to list (sign in)' : `channels not listed: ${error.message}`;
    select.title = error.message;
  }
}

/** The density setting: row height and font, kept by this browser. */
export function wireDensity(select, view, list, saved, save) {
  const apply = (name) => {
    const density = name in DENSITY ? name : 'normal';
    select.value = density;
    list.classList.toggle('compact', density === 'compact');
    list.classList.toggle('roomy', density === 'roomy');
    document.documentElement.style.setProperty('--row', `${DENSITY[density]}px`);
    view.setRowHeight(DENSITY[density]);
  };
  select.addEventListener('change', () => {
    save(select.value);
    apply(select.value);
  });
  apply(saved);
}
