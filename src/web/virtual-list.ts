/**
 * A list that draws only the rows in view (plus a margin), so a table of a thousand slices
 * costs what a screenful does. Rows have a fixed height.
 */
export class VirtualList<T> {
  readonly element: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly body: HTMLElement;
  private items: readonly T[] = [];

  constructor(
    private readonly rowHeight: number,
    private readonly renderRow: (item: T) => HTMLElement,
    height: string,
  ) {
    this.element = document.createElement('div');
    this.element.className = 'vlist';
    this.element.style.height = height;
    this.spacer = document.createElement('div');
    this.body = document.createElement('div');
    this.body.className = 'vlist-body';
    this.spacer.append(this.body);
    this.element.append(this.spacer);
    this.element.addEventListener('scroll', () => this.draw(), { passive: true });
  }

  set(items: readonly T[]): void {
    this.items = items;
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    this.draw();
  }

  private draw(): void {
    const top = this.element.scrollTop;
    const visible = Math.ceil((this.element.clientHeight || 600) / this.rowHeight);
    const first = Math.max(0, Math.floor(top / this.rowHeight) - 5);
    const last = Math.min(this.items.length, first + visible + 10);
    this.body.style.transform = `translateY(${first * this.rowHeight}px)`;
    const rows: HTMLElement[] = [];
    for (let i = first; i < last; i++) {
      const row = this.renderRow(this.items[i]!);
      row.style.height = `${this.rowHeight}px`;
      rows.push(row);
    }
    this.body.replaceChildren(...rows);
  }
}
