// Session API driven by the official TypeScript SDK (@anthropic-ai/sdk).
//
// The client is built exactly as a migrating user would: `new Anthropic({ baseURL, apiKey })`
// and nothing else (the SDK then sends `Authorization: Bearer <key>`). Where a retry would
// hide a status (the SDK retries 408/409/429/5xx), a per-request `maxRetries: 0` is passed.
//
// Environment (exported by run.sh):
//   DS_BASE_URL  server base URL, e.g. http://127.0.0.1:4437 (no /v1)
//   DS_KEY_A     API key of tenant A
//   DS_KEY_B     API key of tenant B
//
// Contract: /work/shared/SPEC.md section 3 and shared/reference/anthropic-sessions-wire.md.
// Tests run in declaration order and share state (one session flows through
// create -> send -> list -> stream -> retrieve -> update -> list -> archive -> delete).
import { describe, test, expect, beforeAll } from 'vitest'
import Anthropic, {
  NotFoundError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  APIError,
} from '@anthropic-ai/sdk'

const BASE_URL = process.env.DS_BASE_URL
const KEY_A = process.env.DS_KEY_A
const KEY_B = process.env.DS_KEY_B
if (!BASE_URL || !KEY_A || !KEY_B) {
  throw new Error('DS_BASE_URL, DS_KEY_A and DS_KEY_B must be set (use tests/compat/sessions/run.sh)')
}

const a = new Anthropic({ baseURL: BASE_URL, apiKey: KEY_A })
const b = new Anthropic({ baseURL: BASE_URL, apiKey: KEY_B })

// Unique per run, so list filters only see this run's sessions even on a shared server.
const RUN = `sdk-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

const SESSION_ID_RE = /^sesn_[0-9A-HJKMNP-TV-Z]{26}$/
const EVENT_ID_RE = /^evt_[0-9A-HJKMNP-TV-Z]{26}$/
const OFFSET_RE = /^\d{16}$/
const RFC3339_MS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const NO_RETRY = { maxRetries: 0 }

const text = (t) => [{ type: 'text', text: t }]
const userMessage = (t) => ({ type: 'user.message', content: text(t) })

async function collect(iterable) {
  const out = []
  for await (const item of iterable) out.push(item)
  return out
}

// Await `promise`, expect it to reject with `Cls`, the given HTTP status and Anthropic
// error type (`err.error` is the parsed body `{type:'error', error:{type, message}, ...}`).
async function expectApiError(promise, Cls, status, errorType) {
  let err
  try {
    await promise
  } catch (e) {
    err = e
  }
  expect(err, `expected ${Cls.name}, but the call succeeded`).toBeDefined()
  if (!(err instanceof Cls)) {
    throw new Error(`expected ${Cls.name}, got ${err?.constructor?.name}: ${err?.message}`)
  }
  expect(err.status).toBe(status)
  expect(err.error?.type).toBe('error')
  expect(err.error?.error?.type).toBe(errorType)
  expect(typeof err.error?.error?.message).toBe('string')
  return err
}

// Read an SDK Stream until `done(received)` is true or `ms` elapses; then abort.
// Returns { events, timedOut, endedByServer }. Pings are skipped by the SDK itself.
async function readStream(stream, done, ms = 10_000) {
  const events = []
  let timedOut = false
  let stoppedByUs = false
  const timer = setTimeout(() => {
    timedOut = true
    stream.controller.abort()
  }, ms)
  try {
    for await (const ev of stream) {
      events.push(ev)
      if (done(events)) {
        stoppedByUs = true
        break // ends the iteration and aborts the request
      }
    }
  } finally {
    clearTimeout(timer)
  }
  return { events, timedOut, endedByServer: !timedOut && !stoppedByUs }
}

function expectStoredEvent(ev) {
  expect(ev.id).toMatch(EVENT_ID_RE)
  expect(ev.offset).toMatch(OFFSET_RE)
  expect(ev.created_at).toMatch(RFC3339_MS_RE)
  expect(ev.processed_at).toMatch(RFC3339_MS_RE)
  expect(typeof ev.type).toBe('string')
}

// ---------------------------------------------------------------------------
// Shared state of the main flow.
let session // tenant A's main session object
const sent = [] // events stored through events.send (in order)

describe('session flow with the TypeScript SDK (tenant A)', () => {
  test('create returns a full Anthropic session object (200, JSON, request-id)', async () => {
    const { data, response } = await a.beta.sessions
      .create({
        agent: 'agent_sdk',
        environment_id: 'env_sdk',
        title: 'sdk flow',
        metadata: { run: RUN, role: 'main', drop_me: 'x' },
      })
      .withResponse()
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/application\/json/)
    expect(response.headers.get('request-id')).toBeTruthy()

    session = data
    expect(session.id).toMatch(SESSION_ID_RE)
    expect(session.type).toBe('session')
    expect(session.title).toBe('sdk flow')
    expect(session.metadata).toEqual({ run: RUN, role: 'main', drop_me: 'x' })
    expect(session.environment_id).toBe('env_sdk')
    expect(session.status).toBe('idle')
    expect(session.archived_at).toBeNull()
    expect(session.agent).toMatchObject({ type: 'agent', id: 'agent_sdk' })
    expect(typeof session.agent.version).toBe('number')
    expect(session.resources).toEqual([])
    expect(session.vault_ids).toEqual([])
    expect(session.outcome_evaluations).toEqual([])
    expect(typeof session.usage).toBe('object')
    expect(typeof session.stats).toBe('object')
    expect(typeof session.created_at).toBe('string')
    expect(typeof session.updated_at).toBe('string')
    expect(Number.isNaN(Date.parse(session.created_at))).toBe(false)
    // Durable Sessions extras
    expect(session.closed).toBe(false)
    expect(session.event_count).toBe(0)
    expect(session.next_offset).toMatch(OFFSET_RE)
  })

  test('create with agent object and initial_events appends the initial events', async () => {
    const s = await a.beta.sessions.create({
      agent: { type: 'agent', id: 'agent_obj', version: 7 },
      environment_id: 'env_sdk',
      metadata: { run: RUN, role: 'initial' },
      initial_events: [userMessage('hello from initial_events')],
    })
    expect(s.id).toMatch(SESSION_ID_RE)
    expect(s.agent).toMatchObject({ type: 'agent', id: 'agent_obj', version: 7 })
    expect(s.title ?? null).toBeNull()
    const events = await collect(a.beta.sessions.events.list(s.id))
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ type: 'user.message', content: text('hello from initial_events') })
    expectStoredEvent(events[0])
  })

  test('events.send stores events and echoes them with server fields', async () => {
    const batch = [
      userMessage('first question'),
      { type: 'user.interrupt' },
      // Any type is accepted (the Anthropic types are conventions, not a whitelist).
      { type: 'agent.tool_use', name: 'grep', input: { pattern: 'stripe' } },
      { type: 'agent.message', content: text('an answer') },
      { type: 'custom.note', payload: { nested: [1, 2, { deep: true }] } },
    ]
    const res = await a.beta.sessions.events.send(session.id, { events: batch })
    expect(Array.isArray(res.data)).toBe(true)
    expect(res.data).toHaveLength(batch.length)
    res.data.forEach((ev, i) => {
      expectStoredEvent(ev)
      expect(ev).toMatchObject(batch[i])
    })
    // Offsets strictly increasing; ids unique.
    for (let i = 1; i < res.data.length; i++) {
      expect(res.data[i].offset > res.data[i - 1].offset).toBe(true)
    }
    expect(new Set(res.data.map((e) => e.id)).size).toBe(batch.length)
    sent.push(...res.data)

    // Client-sent server fields are replaced by the server's.
    const res2 = await a.beta.sessions.events.send(session.id, {
      events: [{ ...userMessage('second question'), id: 'evt_client', offset: 'x', processed_at: '1999-01-01T00:00:00Z' }],
    })
    expect(res2.data).toHaveLength(1)
    expectStoredEvent(res2.data[0])
    expect(res2.data[0].id).not.toBe('evt_client')
    expect(res2.data[0].processed_at).not.toBe('1999-01-01T00:00:00Z')
    expect(res2.data[0].offset > sent[sent.length - 1].offset).toBe(true)
    sent.push(...res2.data)
  })

  test('events.list returns all events in order (asc by default)', async () => {
    const events = await collect(a.beta.sessions.events.list(session.id))
    expect(events.map((e) => e.id)).toEqual(sent.map((e) => e.id))
    expect(events).toEqual(sent) // byte-for-byte the stored events
  })

  test('events.list with the types filter (types[]=…)', async () => {
    const tools = await collect(a.beta.sessions.events.list(session.id, { types: ['agent.tool_use'] }))
    expect(tools.map((e) => e.type)).toEqual(['agent.tool_use'])
    expect(tools[0]).toMatchObject({ name: 'grep', input: { pattern: 'stripe' } })

    const two = await collect(
      a.beta.sessions.events.list(session.id, { types: ['user.message', 'agent.message'] }),
    )
    expect(two.map((e) => e.type)).toEqual(['user.message', 'agent.message', 'user.message'])

    const none = await collect(a.beta.sessions.events.list(session.id, { types: ['session.error'] }))
    expect(none).toEqual([])
  })

  test('events.list order desc', async () => {
    const events = await collect(a.beta.sessions.events.list(session.id, { order: 'desc' }))
    expect(events.map((e) => e.id)).toEqual(sent.map((e) => e.id).reverse())
  })

  test('events.list auto-paginates with a small limit over more events than the limit', async () => {
    const more = Array.from({ length: 23 }, (_, i) => userMessage(`page filler ${i}`))
    const res = await a.beta.sessions.events.send(session.id, { events: more })
    expect(res.data).toHaveLength(23)
    sent.push(...res.data)

    // Item auto-pagination.
    const all = await collect(a.beta.sessions.events.list(session.id, { limit: 4 }))
    expect(all.map((e) => e.id)).toEqual(sent.map((e) => e.id))

    // Page by page: every page respects the limit, the last page has next_page null.
    const first = await a.beta.sessions.events.list(session.id, { limit: 4 })
    let pages = 0
    let items = 0
    let last
    for await (const page of first.iterPages()) {
      pages++
      expect(page.data.length).toBeLessThanOrEqual(4)
      items += page.data.length
      last = page
      if (pages > 100) throw new Error('pagination does not terminate')
    }
    expect(items).toBe(sent.length)
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(sent.length / 4))
    expect(last.next_page ?? null).toBeNull()

    // Pagination combined with the types filter.
    const msgs = await collect(a.beta.sessions.events.list(session.id, { limit: 3, types: ['user.message'] }))
    expect(msgs.map((e) => e.id)).toEqual(sent.filter((e) => e.type === 'user.message').map((e) => e.id))
  })

  test('events.list created_at[gte] compares processed_at', async () => {
    const pivot = sent[sent.length - 1].processed_at
    const later = await collect(a.beta.sessions.events.list(session.id, { 'created_at[gte]': pivot }))
    expect(later.length).toBeGreaterThanOrEqual(1)
    for (const e of later) expect(e.processed_at >= pivot).toBe(true)
    const future = await collect(
      a.beta.sessions.events.list(session.id, { 'created_at[gt]': '2999-01-01T00:00:00Z' }),
    )
    expect(future).toEqual([])
  })

  test('events.stream live-tails events appended after the connection opens', async () => {
    const stream = await a.beta.sessions.events.stream(session.id)
    // Headers have arrived (the SDK resolves after them); now another task appends.
    const payload = [userMessage('live 1'), { type: 'agent.message', content: text('live 2') }, userMessage('live 3')]
    const sender = (async () => {
      await new Promise((r) => setTimeout(r, 100))
      return a.beta.sessions.events.send(session.id, { events: payload })
    })()
    const { events, timedOut } = await readStream(stream, (evs) => evs.length >= payload.length)
    const res = await sender
    sent.push(...res.data)
    expect(timedOut, `stream delivered only ${events.length} of ${payload.length} events`).toBe(false)
    // A live tail: nothing from before the connection, exactly the sent events, in order.
    expect(events.map((e) => e.id)).toEqual(res.data.map((e) => e.id))
    events.forEach((ev, i) => {
      expect(ev).toMatchObject(payload[i])
      expectStoredEvent(ev)
    })
  })

  test('events.stream accepts event_deltas[] and still delivers stored events', async () => {
    const stream = await a.beta.sessions.events.stream(session.id, { event_deltas: ['agent.message'] })
    const sender = a.beta.sessions.events.send(session.id, { events: [{ type: 'agent.message', content: text('with deltas') }] })
    const { events, timedOut } = await readStream(stream, (evs) => evs.some((e) => e.type === 'agent.message'))
    const res = await sender
    sent.push(...res.data)
    expect(timedOut).toBe(false)
    const msg = events.find((e) => e.type === 'agent.message')
    expect(msg.id).toBe(res.data[0].id)
  })

  test('events.stream with an offset replays history first (Durable Sessions extension)', async () => {
    // Unknown params pass through the SDK into the query string: ?offset=<first offset>.
    const stream = await a.beta.sessions.events.stream(session.id, { offset: sent[0].offset })
    const { events, timedOut } = await readStream(stream, (evs) => evs.length >= sent.length)
    expect(timedOut).toBe(false)
    expect(events.map((e) => e.id)).toEqual(sent.map((e) => e.id))
  })

  test('retrieve reflects derived fields: status, usage, event_count, next_offset', async () => {
    const usage = { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 2, cache_creation_input_tokens: 1 }
    const res = await a.beta.sessions.events.send(session.id, {
      events: [
        { type: 'session.status_running' },
        { type: 'span.model_request_start' },
        { type: 'span.model_request_end', is_error: false, model_request_start_id: 'x', model_usage: usage },
        { type: 'span.model_request_end', is_error: false, model_request_start_id: 'y', model_usage: usage },
      ],
    })
    sent.push(...res.data)

    const { data: s, response } = await a.beta.sessions.retrieve(session.id).withResponse()
    expect(response.headers.get('content-type')).toMatch(/application\/json/)
    expect(response.headers.get('request-id')).toBeTruthy()
    expect(s.id).toBe(session.id)
    expect(s.type).toBe('session')
    expect(s.title).toBe('sdk flow')
    expect(s.status).toBe('running')
    expect(s.usage.input_tokens).toBe(20)
    expect(s.usage.output_tokens).toBe(10)
    expect(s.usage.cache_read_input_tokens).toBe(4)
    expect(s.event_count).toBe(sent.length)
    expect(s.next_offset).toMatch(OFFSET_RE)
    expect(s.next_offset > sent[sent.length - 1].offset).toBe(true)
    expect(s.closed).toBe(false)
    expect(s.updated_at >= session.updated_at).toBe(true)

    const idle = await a.beta.sessions.events.send(session.id, {
      events: [{ type: 'session.status_idle', stop_reason: { type: 'end_turn' }, stop_details: null }],
    })
    sent.push(...idle.data)
    expect((await a.beta.sessions.retrieve(session.id)).status).toBe('idle')
  })

  test('update patches metadata (null deletes), sets title, appends session.updated', async () => {
    const s = await a.beta.sessions.update(session.id, {
      title: 'sdk flow (renamed)',
      metadata: { drop_me: null, added: 'yes' },
    })
    expect(s.id).toBe(session.id)
    expect(s.title).toBe('sdk flow (renamed)')
    expect(s.metadata).toEqual({ run: RUN, role: 'main', added: 'yes' })

    const again = await a.beta.sessions.retrieve(session.id)
    expect(again.title).toBe('sdk flow (renamed)')
    expect(again.metadata).toEqual({ run: RUN, role: 'main', added: 'yes' })

    // Absent metadata preserves the bag.
    const t = await a.beta.sessions.update(session.id, { title: 'sdk flow v3' })
    expect(t.title).toBe('sdk flow v3')
    expect(t.metadata).toEqual({ run: RUN, role: 'main', added: 'yes' })

    const updates = await collect(a.beta.sessions.events.list(session.id, { types: ['session.updated'] }))
    expect(updates).toHaveLength(2)
    expectStoredEvent(updates[0])
    expect(updates[0].title).toBe('sdk flow (renamed)')
    expect(updates[1].title).toBe('sdk flow v3')
    expect(updates[1].metadata === undefined || updates[1].metadata?.added === 'yes').toBe(true)
    sent.push(...updates)
  })

  test('list with metadata filter, order and auto-pagination', async () => {
    const created = []
    for (let i = 0; i < 5; i++) {
      created.push(
        await a.beta.sessions.create({
          agent: 'agent_list',
          environment_id: 'env_list',
          title: `list ${i}`,
          metadata: { run: RUN, group: 'paging' },
        }),
      )
    }
    const ids = created.map((s) => s.id)

    const desc = await collect(a.beta.sessions.list({ limit: 2, metadata: { run: RUN, group: 'paging' } }))
    expect(desc.map((s) => s.id).sort()).toEqual([...ids].sort())
    for (let i = 1; i < desc.length; i++) expect(desc[i - 1].created_at >= desc[i].created_at).toBe(true)

    const asc = await collect(
      a.beta.sessions.list({ limit: 2, order: 'asc', metadata: { run: RUN, group: 'paging' } }),
    )
    expect(asc.map((s) => s.id).sort()).toEqual([...ids].sort())
    for (let i = 1; i < asc.length; i++) expect(asc[i - 1].created_at <= asc[i].created_at).toBe(true)

    // A single page: {data, next_page, prev_page}; next_page non-null while more remain.
    const page = await a.beta.sessions.list({ limit: 2, metadata: { run: RUN, group: 'paging' } })
    expect(page.data).toHaveLength(2)
    expect(page.next_page).toBeTruthy()
    expect('prev_page' in page).toBe(true)

    // Everything of this run: main, initial, and the 5 paging sessions.
    const mine = await collect(a.beta.sessions.list({ limit: 100, metadata: { run: RUN } }))
    expect(mine.map((s) => s.id)).toContain(session.id)
    expect(mine).toHaveLength(7)

    // agent_id filter.
    const byAgent = await collect(a.beta.sessions.list({ agent_id: 'agent_list', metadata: { run: RUN } }))
    expect(byAgent.map((s) => s.id).sort()).toEqual([...ids].sort())
  })

  test('list with statuses filter', async () => {
    const running = await a.beta.sessions.create({
      agent: 'agent_status',
      environment_id: 'env_list',
      metadata: { run: RUN, group: 'status' },
    })
    await a.beta.sessions.events.send(running.id, { events: [{ type: 'session.status_running' }] })
    const idle = await a.beta.sessions.create({
      agent: 'agent_status',
      environment_id: 'env_list',
      metadata: { run: RUN, group: 'status' },
    })
    const r = await collect(a.beta.sessions.list({ statuses: ['running'], metadata: { run: RUN, group: 'status' } }))
    expect(r.map((s) => s.id)).toEqual([running.id])
    const i = await collect(a.beta.sessions.list({ statuses: ['idle'], metadata: { run: RUN, group: 'status' } }))
    expect(i.map((s) => s.id)).toEqual([idle.id])
    const both = await collect(
      a.beta.sessions.list({ statuses: ['idle', 'running'], metadata: { run: RUN, group: 'status' } }),
    )
    expect(both.map((s) => s.id).sort()).toEqual([running.id, idle.id].sort())
  })

  test('archive: status terminated, archived_at set, hidden from list unless include_archived', async () => {
    const s = await a.beta.sessions.archive(session.id)
    expect(s.id).toBe(session.id)
    expect(s.archived_at).toBeTruthy()
    expect(Number.isNaN(Date.parse(s.archived_at))).toBe(false)
    expect(s.status).toBe('terminated')

    const r = await a.beta.sessions.retrieve(session.id)
    expect(r.archived_at).toBe(s.archived_at)
    expect(r.status).toBe('terminated')

    const hidden = await collect(a.beta.sessions.list({ metadata: { run: RUN, role: 'main' } }))
    expect(hidden.map((x) => x.id)).not.toContain(session.id)
    const hiddenFalse = await collect(
      a.beta.sessions.list({ include_archived: false, metadata: { run: RUN, role: 'main' } }),
    )
    expect(hiddenFalse.map((x) => x.id)).not.toContain(session.id)
    const shown = await collect(
      a.beta.sessions.list({ include_archived: true, metadata: { run: RUN, role: 'main' } }),
    )
    expect(shown.map((x) => x.id)).toEqual([session.id])
    expect(shown[0].status).toBe('terminated')

    // Events of an archived session stay readable.
    const events = await collect(a.beta.sessions.events.list(session.id, { limit: 1000 }))
    expect(events.slice(0, sent.length).map((e) => e.id)).toEqual(sent.map((e) => e.id))
  })

  test('delete: {id, type:"session_deleted"}; live stream gets session.deleted then ends; then 404', async () => {
    const victim = await a.beta.sessions.create({
      agent: 'agent_del',
      environment_id: 'env_del',
      metadata: { run: RUN, role: 'victim' },
    })
    const doomed = await a.beta.sessions.events.send(victim.id, {
      events: [userMessage('doomed 1'), userMessage('doomed 2')],
    })
    const stream = await a.beta.sessions.events.stream(victim.id)
    const reading = readStream(stream, () => false, 10_000)
    await new Promise((r) => setTimeout(r, 100))

    const del = await a.beta.sessions.delete(victim.id)
    expect(del).toEqual({ id: victim.id, type: 'session_deleted' })

    const { events, timedOut, endedByServer } = await reading
    expect(events.map((e) => e.type)).toContain('session.deleted')
    expect(events[events.length - 1].type).toBe('session.deleted')
    // The session.deleted event is a stored-event-shaped message positioned after the log
    // (offsets are strictly increasing; it must not reuse an existing offset).
    const deleted = events[events.length - 1]
    expectStoredEvent(deleted)
    expect(deleted.offset > doomed.data[1].offset, `session.deleted offset ${deleted.offset}`).toBe(true)
    expect(timedOut, 'stream did not end after session.deleted').toBe(false)
    expect(endedByServer).toBe(true)

    await expectApiError(a.beta.sessions.retrieve(victim.id, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(
      collect(a.beta.sessions.events.list(victim.id, {}, NO_RETRY)),
      NotFoundError,
      404,
      'not_found_error',
    )
    const listed = await collect(a.beta.sessions.list({ include_archived: true, metadata: { run: RUN, role: 'victim' } }))
    expect(listed).toEqual([])
    await expectApiError(a.beta.sessions.delete(victim.id, NO_RETRY), NotFoundError, 404, 'not_found_error')
  })

  test('delete the archived main session', async () => {
    const del = await a.beta.sessions.delete(session.id)
    expect(del).toEqual({ id: session.id, type: 'session_deleted' })
    await expectApiError(a.beta.sessions.retrieve(session.id, NO_RETRY), NotFoundError, 404, 'not_found_error')
  })
})

describe('error classes', () => {
  const missing = 'sesn_01ARZ3NDEKTSV4RRFFQ69G5FAV'

  test('unknown session -> NotFoundError (404 not_found_error) on every session method', async () => {
    await expectApiError(a.beta.sessions.retrieve(missing, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(
      a.beta.sessions.update(missing, { title: 'x' }, NO_RETRY),
      NotFoundError,
      404,
      'not_found_error',
    )
    await expectApiError(a.beta.sessions.archive(missing, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(a.beta.sessions.delete(missing, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(
      collect(a.beta.sessions.events.list(missing, {}, NO_RETRY)),
      NotFoundError,
      404,
      'not_found_error',
    )
    await expectApiError(a.beta.sessions.events.stream(missing, {}, NO_RETRY), NotFoundError, 404, 'not_found_error')
  })

  test('bad key -> AuthenticationError (401 authentication_error)', async () => {
    const bad = new Anthropic({ baseURL: BASE_URL, apiKey: 'ds_this_key_does_not_exist' })
    const err = await expectApiError(
      bad.beta.sessions.list({}, NO_RETRY),
      AuthenticationError,
      401,
      'authentication_error',
    )
    expect(err).toBeInstanceOf(APIError)
    await expectApiError(
      bad.beta.sessions.create({ agent: 'x', environment_id: 'y' }, NO_RETRY),
      AuthenticationError,
      401,
      'authentication_error',
    )
  })

  test('invalid events -> BadRequestError (400 invalid_request_error)', async () => {
    const s = await a.beta.sessions.create({ agent: 'agent_err', environment_id: 'env', metadata: { run: RUN, role: 'err' } })
    await expectApiError(
      a.beta.sessions.events.send(s.id, { events: [] }, NO_RETRY),
      BadRequestError,
      400,
      'invalid_request_error',
    )
    await expectApiError(
      a.beta.sessions.events.send(s.id, { events: [{ content: text('no type') }] }, NO_RETRY),
      BadRequestError,
      400,
      'invalid_request_error',
    )
    // Nothing was stored by the rejected requests.
    expect(await collect(a.beta.sessions.events.list(s.id))).toEqual([])
    await a.beta.sessions.delete(s.id)
  })
})

describe('concurrency and retries', () => {
  test('concurrent events.send calls get unique, ordered offsets', async () => {
    const s = await a.beta.sessions.create({ agent: 'agent_conc', environment_id: 'env', metadata: { run: RUN, role: 'conc' } })
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        a.beta.sessions.events.send(s.id, { events: [userMessage(`c${i}-a`), userMessage(`c${i}-b`)] }),
      ),
    )
    const stored = results.flatMap((r) => r.data)
    expect(new Set(stored.map((e) => e.offset)).size).toBe(40)
    for (const r of results) {
      // each batch is contiguous
      expect(Number(r.data[1].offset) - Number(r.data[0].offset)).toBe(1)
    }
    const listed = await collect(a.beta.sessions.events.list(s.id, { limit: 7 }))
    expect(listed.map((e) => e.offset)).toEqual(stored.map((e) => e.offset).sort())
    await a.beta.sessions.delete(s.id)
  })

  test('a 409 on a closed session is not retried by the SDK (x-should-retry: false)', async () => {
    const s = await a.beta.sessions.create({ agent: 'agent_409', environment_id: 'env', metadata: { run: RUN, role: '409' } })
    // Close the session with the Durable Streams header (no SDK method for it).
    const close = await fetch(`${BASE_URL}/v1/sessions/${s.id}/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY_A}`, 'stream-closed': 'true' },
    })
    expect([200, 204]).toContain(close.status)
    // Count attempts with a wrapping fetch; otherwise the client is as a user builds it
    // (default maxRetries 2, so without x-should-retry: false the SDK would try 3 times).
    let attempts = 0
    const counting = new Anthropic({
      baseURL: BASE_URL,
      apiKey: KEY_A,
      fetch: (url, init) => {
        attempts++
        return fetch(url, init)
      },
    })
    const err = await expectApiError(
      counting.beta.sessions.events.send(s.id, { events: [userMessage('too late')] }),
      ConflictError,
      409,
      'conflict_error',
    )
    expect(err.headers.get('x-should-retry')).toBe('false')
    expect(attempts).toBe(1)
    expect((await a.beta.sessions.retrieve(s.id)).closed).toBe(true)
    await a.beta.sessions.delete(s.id)
  })
})

describe('tenant isolation', () => {
  let mine // tenant A's session
  let before

  beforeAll(async () => {
    mine = await a.beta.sessions.create({
      agent: 'agent_iso',
      environment_id: 'env_iso',
      title: 'tenant A secret',
      metadata: { run: RUN, role: 'isolation' },
    })
    await a.beta.sessions.events.send(mine.id, { events: [userMessage('only for tenant A')] })
    before = await collect(a.beta.sessions.events.list(mine.id))
  })

  test("tenant B gets NotFoundError for every method on tenant A's session", async () => {
    const id = mine.id
    await expectApiError(b.beta.sessions.retrieve(id, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(b.beta.sessions.update(id, { title: 'pwned' }, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(b.beta.sessions.archive(id, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(
      collect(b.beta.sessions.events.list(id, {}, NO_RETRY)),
      NotFoundError,
      404,
      'not_found_error',
    )
    await expectApiError(b.beta.sessions.events.stream(id, {}, NO_RETRY), NotFoundError, 404, 'not_found_error')
    await expectApiError(b.beta.sessions.delete(id, NO_RETRY), NotFoundError, 404, 'not_found_error')

    // events.send with B's key on A's id: the id is unknown in B's namespace, so the server may
    // answer 404 or implicitly create a separate session of B's (SPEC 3.3). Never A's session.
    let res
    try {
      res = await b.beta.sessions.events.send(id, { events: [userMessage('from B')] }, NO_RETRY)
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e
    }
    if (res) {
      const bEvents = await collect(b.beta.sessions.events.list(id))
      expect(bEvents.map((e) => e.content?.[0]?.text)).toEqual(['from B'])
      await b.beta.sessions.delete(id)
    }

    // Tenant A's session is untouched.
    const s = await a.beta.sessions.retrieve(id)
    expect(s.title).toBe('tenant A secret')
    expect(s.archived_at).toBeNull()
    expect(await collect(a.beta.sessions.events.list(id))).toEqual(before)
  })

  test("tenant B's list shows none of tenant A's sessions (and vice versa)", async () => {
    const bAll = await collect(b.beta.sessions.list({ include_archived: true, limit: 1000 }))
    const bIds = new Set(bAll.map((s) => s.id))
    expect(bIds.has(mine.id)).toBe(false)
    const bRun = await collect(b.beta.sessions.list({ include_archived: true, metadata: { run: RUN } }))
    expect(bRun).toEqual([])

    const theirs = await b.beta.sessions.create({
      agent: 'agent_b',
      environment_id: 'env_b',
      metadata: { run: RUN, role: 'tenant-b' },
    })
    await expectApiError(a.beta.sessions.retrieve(theirs.id, NO_RETRY), NotFoundError, 404, 'not_found_error')
    const aRun = await collect(a.beta.sessions.list({ include_archived: true, metadata: { run: RUN, role: 'tenant-b' } }))
    expect(aRun).toEqual([])
    const bMine = await collect(b.beta.sessions.list({ metadata: { run: RUN } }))
    expect(bMine.map((s) => s.id)).toEqual([theirs.id])
    await b.beta.sessions.delete(theirs.id)
  })
})
