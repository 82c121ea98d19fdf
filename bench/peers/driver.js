// PouchDB side of `make bench-peers`: one command per call, JSON in (argv[2], argv[3]),
// one JSON line out. Replication is PouchDB's own, tuned: batch_size 1,000.
//   seed    {remote, file}            head office writes documents straight to the server
//   backlog {remote, local, file}     the till stores the sales offline, then replicates them up
//   pull    {remote, local}           the till replicates the server's database down
//   change  {remote, reprice, delete} head office reprices and deletes documents by _id
'use strict';
const fs = require('fs');
const PouchDB = require('pouchdb-node');

const BATCH = 1000;

async function inChunks(db, docs) {
  for (let i = 0; i < docs.length; i += BATCH) {
    const res = await db.bulkDocs(docs.slice(i, i + BATCH));
    const bad = res.filter((r) => r.error);
    if (bad.length) throw new Error(`bulkDocs refused ${bad.length}: ${JSON.stringify(bad[0])}`);
  }
}

function replicate(from, to) {
  return new Promise((resolve, reject) => {
    PouchDB.replicate(from, to, { batch_size: BATCH, batches_limit: 10 })
      .on('complete', resolve).on('error', reject).on('denied', reject);
  });
}

const commands = {
  async seed({ remote, file }) {
    await inChunks(new PouchDB(remote), JSON.parse(fs.readFileSync(file, 'utf8')));
    return {};
  },
  async backlog({ remote, local, file }) {
    const till = new PouchDB(local);
    await inChunks(till, JSON.parse(fs.readFileSync(file, 'utf8')));
    const started = process.hrtime.bigint();
    const info = await replicate(till, new PouchDB(remote));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await till.close();
    return { seconds, docs_written: info.docs_written };
  },
  async pull({ remote, local }) {
    const till = new PouchDB(local);
    const started = process.hrtime.bigint();
    const info = await replicate(new PouchDB(remote), till);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const { doc_count } = await till.info();
    await till.close();
    return { seconds, docs_written: info.docs_written, doc_count };
  },
  async change({ remote, reprice, delete: remove }) {
    const db = new PouchDB(remote);
    const ids = [...reprice.map((r) => r[0]), ...remove];
    const found = await db.allDocs({ keys: ids, include_docs: true });
    const price = new Map(reprice);
    const gone = new Set(remove);
    const docs = found.rows.map((row) => (gone.has(row.id)
      ? { _id: row.id, _rev: row.value.rev, _deleted: true }
      : { ...row.doc, price: price.get(row.id) }));
    await inChunks(db, docs);
    return {};
  },
};

(async () => {
  const [command, args] = [process.argv[2], JSON.parse(process.argv[3] || '{}')];
  if (!commands[command]) throw new Error(`unknown command ${command}; one of ${Object.keys(commands)}`);
  process.stdout.write(JSON.stringify(await commands[command](args)) + '\n');
})().catch((err) => { console.error(err && err.stack || err); process.exit(1); });
