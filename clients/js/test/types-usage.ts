// Compiled with `tsc --noEmit --strict` by types.test.mjs: the declarations
// must describe what a TypeScript board would write.
import {
  OddsBoard, boardKey, compareIds, backoffDelay, tokenExpiry, isOddsStream,
  type BoardItem, type Filter, type StatusEvent, type UpdateEvent,
} from '../oddsboard.js';

const filter: Filter = { sports: ['basketball_nba'], books: ['fanduel'] };
const board = new OddsBoard('ws://localhost:8080/ws', {
  filter,
  getToken: async () => 'token',
  conflateMs: 250,
  pingInterval: 30000,
  backoff: { base: 250, cap: 30000, resetAfter: 30000 },
  autoConnect: false,
});
board.on('update', (ev: UpdateEvent) => {
  const key: string | null = ev.key;
  const price: number | null | undefined = ev.value.price;
  if (key !== null && ev.previous !== undefined) console.log(key, price, ev.previous.id, ev.conflated);
});
board.on('status', (ev: StatusEvent) => console.log(ev.status, ev.epoch, ev.attempt ?? 0));
board.on('snapshot', (ev) => console.log(ev.size, ev.reason ?? ''));
board.on('error', (ev) => console.log(ev.code, ev.fatal, ev.closeCode));
const items: BoardItem[] = board.values((item) => item.book_key === 'fanduel');
const first: BoardItem | undefined = board.get(boardKey(items[0]) ?? '');
const n: number = compareIds('1-0', '2-0') + backoffDelay(3) + (tokenExpiry('a.b.c') ?? 0);
const odds: boolean = isOddsStream(first?.stream ?? '');
board.setFilter({ markets: ['h2h'] });
void board.ready.then(() => board.close());
console.log(n, odds, board.size, board.stats.staleDropped, board.positions, board.keys());
