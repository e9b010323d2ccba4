"""The voice and SMS dialogues, on top of routing and tickets.

- ``engine``: flows as data (``flow_*.yaml``: steps, bilingual prompts, transitions, attempts,
  timeouts) turned into TwiML; checked at start-up.
- ``voice`` (main hotline), ``monitor`` (监督电话), ``revisit`` (客户回访): each flow's actions.
- ``calls``: one entry point per voice webhook (a step, call status, recording and message
  status callbacks, the apology), idempotent through ``store``.
- ``sms``: the two-way SMS dialogue (keywords, the district follow-up, opt-out).
- ``jobs``: the confirmation SMS after a call (an outbox task, ``ticket_sms``); ``notices``: their
  texts.
- ``models``: dialogue state, webhook deliveries, call and message logs.

Nothing here imports FastAPI, Starlette or ``hotline``: the web edge passes in what it read.
"""
