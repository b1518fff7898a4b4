/**
 * Whether the list follows the newest entry: it does until the reader scrolls up or pauses
 * (Pause, Space); back at the bottom (or on "jump to latest") it follows again. Meanwhile it
 * counts the entries shown below.
 */

export class Follow {
  following = true;
  held = false;
  unseen = 0;
  #autoTop = -1; // the scrollTop the view set last: its scroll event is not the reader's

  /** Following and not paused: the newest entry is kept in sight. */
  get active() {
    return this.following && !this.held;
  }

  /** The view scrolled `list` itself (to follow, or to keep the reader's place). */
  scrolledBy(list) {
    this.#autoTop = list.scrollTop;
  }

  /** A scroll event of `list`; false when it was the view's own. */
  readerScrolled(list) {
    if (Math.abs(list.scrollTop - this.#autoTop) < 1) return false;
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 2;
    if (atBottom && !this.held) this.jump();
    else if (!atBottom) this.following = false;
    return true;
  }

  /** `count` entries came into the list below. */
  arrived(count) {
    if (!this.active) this.unseen += count;
  }

  /** Follow again (jump to latest; unpauses). */
  jump() {
    this.held = false;
    this.following = true;
    this.unseen = 0;
  }

  stop() {
    this.following = false;
  }

  hold(held) {
    if (held) {
      this.held = true;
      this.following = false;
    } else {
      this.jump();
    }
  }
}
