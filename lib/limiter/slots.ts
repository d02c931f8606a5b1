import type Bottleneck from 'bottleneck';
import { adjustReservoir, freeNow, takeNow } from '../internal/bottleneck';

/** A held slot in some limiter; `undo` gives it back as if the call never went. */
export interface Grant {
  release(): void;
  undo(): void;
}

/**
 * A grant whose release runs once; undo also gives the taken weight back to the reservoir. A
 * class, not closures: every call takes one, and its methods are then shared.
 */
class SlotGrant implements Grant {
  private released = false;

  constructor(
    private readonly limiter: Bottleneck,
    private readonly weight: number,
    /** Frees the slot in Bottleneck: a job's `done`, or undefined for a slot taken at once (freeNow). */
    private readonly done?: () => void,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.done) this.done();
    else freeNow(this.limiter, this.weight);
  }

  undo(): void {
    this.release();
    adjustReservoir(this.limiter, this.weight);
  }
}

/** A slot of a Bottleneck limiter taken at once when nothing waits and there is room; undefined otherwise. */
export function takeSlotNow(limiter: Bottleneck, weight = 1): Grant | undefined {
  return takeNow(limiter, weight) ? new SlotGrant(limiter, weight) : undefined;
}

/** Takes one slot of a Bottleneck limiter and holds it until released. */
export function holdSlot(limiter: Bottleneck, weight = 1): Promise<Grant> | Grant {
  const now = takeSlotNow(limiter, weight);
  if (now) return now;
  return new Promise((granted, failed) => {
    limiter
      .schedule(
        { weight },
        () => new Promise<void>((done) => granted(new SlotGrant(limiter, weight, done))),
      )
      .catch(failed);
  });
}
