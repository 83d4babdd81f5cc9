/**
 * Where a sliver (a slice's share of one node) or a task can go, and which node suits it
 * best: pure arithmetic over what each node offers, in the shape of the Kubernetes
 * scheduler's Filter and Score steps. A node fits when it is schedulable and its unreserved
 * CPU and memory cover the request (reservations are guarantees: they are never over-
 * committed); among the nodes that fit, the one left with the most room scores highest,
 * with measured use as the tie-breaker, and the name after that, so a choice is repeatable.
 */

/** What a node offers, as its agent reports it. CPU in millicores, memory in bytes. */
export interface NodeOffer {
  node: string;
  /** False while the node drains or is cordoned: nothing new goes there. */
  schedulable: boolean;
  cpu: { capacity: number; reserved: number; used: number };
  memory: { capacity: number; reserved: number };
}

/** What a sliver or a task needs guaranteed on a node. */
export interface PlacementRequest {
  cpuReservation: number;
  /** Memory that must be free for it (its limit), or 0 when it sets none. */
  memory: number;
}

export interface Placement {
  /** The best node, or null when none fits. */
  node: string | null;
  /** Nodes that fit, best first. */
  ranked: Array<{ node: string; score: number }>;
  /** Nodes that do not fit, with each reason. */
  refused: Array<{ node: string; problems: string[] }>;
}

/** Why `request` does not fit on `offer` (empty when it fits). */
export function fitProblems(offer: NodeOffer, request: PlacementRequest): string[] {
  const problems: string[] = [];
  if (!offer.schedulable) problems.push('the node is not schedulable (draining or cordoned)');
  const freeCpu = offer.cpu.capacity - offer.cpu.reserved;
  if (request.cpuReservation > freeCpu) {
    problems.push(`CPU: ${request.cpuReservation}m reservation asked, ${Math.max(0, freeCpu)}m of ${offer.cpu.capacity}m unreserved`);
  }
  const freeMemory = offer.memory.capacity - offer.memory.reserved;
  if (request.memory > freeMemory) {
    problems.push(`memory: ${request.memory} bytes asked, ${Math.max(0, freeMemory)} of ${offer.memory.capacity} unreserved`);
  }
  return problems;
}

/**
 * How well `request` suits `offer`, from 0 to 100: the share of CPU and of memory left
 * unreserved after placing it (averaged), lowered a little by measured CPU use. Only
 * meaningful for a node that fits.
 */
export function placementScore(offer: NodeOffer, request: PlacementRequest): number {
  const cpuLeft = offer.cpu.capacity > 0 ? (offer.cpu.capacity - offer.cpu.reserved - request.cpuReservation) / offer.cpu.capacity : 0;
  const memoryLeft =
    offer.memory.capacity > 0 ? (offer.memory.capacity - offer.memory.reserved - request.memory) / offer.memory.capacity : 0;
  const idle = offer.cpu.capacity > 0 ? 1 - Math.min(1, offer.cpu.used / offer.cpu.capacity) : 0;
  const score = 90 * ((clamp01(cpuLeft) + clamp01(memoryLeft)) / 2) + 10 * idle;
  return Math.round(score * 100) / 100;
}

/** The nodes `request` fits on, best first, and why the others were refused. */
export function place(offers: readonly NodeOffer[], request: PlacementRequest): Placement {
  const ranked: Placement['ranked'] = [];
  const refused: Placement['refused'] = [];
  for (const offer of offers) {
    const problems = fitProblems(offer, request);
    if (problems.length > 0) refused.push({ node: offer.node, problems });
    else ranked.push({ node: offer.node, score: placementScore(offer, request) });
  }
  ranked.sort((a, b) => b.score - a.score || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { node: ranked[0]?.node ?? null, ranked, refused };
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
