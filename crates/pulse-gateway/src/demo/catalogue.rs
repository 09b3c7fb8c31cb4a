//! The fixed catalogue the simulator draws from: kanban columns, agents and
//! models, ticket titles, approval kinds, customers, subjects and chat lines.
//!
//! Invariants: every table is non-empty (the simulator indexes `[0]` as a
//! fallback), and there are at least 40 ticket titles (the seed takes 40).

pub(super) const COLUMNS: [&str; 5] = ["backlog", "todo", "in_progress", "review", "done"];

pub(super) const AGENTS: [(&str, &str); 12] = [
    ("Atlas", "code-review"),
    ("Nova", "customer-support"),
    ("Orion", "deploy"),
    ("Juniper", "triage"),
    ("Sable", "qa"),
    ("Quill", "docs"),
    ("Vega", "customer-support"),
    ("Ember", "billing"),
    ("Cobalt", "infra"),
    ("Lyra", "data"),
    ("Onyx", "security"),
    ("Pike", "code-review"),
];

pub(super) const MODELS: [&str; 4] = [
    "claude-sonnet-4",
    "gpt-4.1",
    "claude-haiku-4",
    "llama-3.3-70b",
];

pub(super) const TICKETS: [&str; 44] = [
    "Checkout fails for EU cards with 3-D Secure",
    "Add retry with backoff to webhook delivery",
    "Migrate invoices table to partitioned layout",
    "Flaky test: test_refund_partial_amount",
    "Dark mode contrast issues on settings page",
    "Rate limiter counts OPTIONS preflight requests",
    "Upgrade OpenSSL in base image",
    "Export usage report as CSV",
    "Slack alert fires twice on deploy",
    "Search ignores accented characters",
    "Add audit log for role changes",
    "Reduce cold start of billing lambda",
    "Password reset email lands in spam",
    "Kanban drag and drop loses order on refresh",
    "Cache tenant settings in the API gateway",
    "Broken link in onboarding checklist",
    "Paginate /v2/customers endpoint",
    "Memory leak in PDF renderer worker",
    "SSO login loops for Okta tenants",
    "Add idempotency keys to payouts API",
    "Translate help centre into German",
    "Timeouts calling the tax service",
    "Show agent cost per ticket",
    "Backfill missing timezone on 1.2k accounts",
    "Nightly ETL job exceeds its window",
    "Support bulk ticket assignment",
    "CSP blocks the analytics snippet",
    "Trial expiry banner shows wrong date",
    "Move secrets from env files to the vault",
    "Add p99 latency panel to the API dashboard",
    "Duplicate charges on plan upgrade",
    "Mobile layout breaks on the invoices page",
    "Rotate TLS certificates for edge proxies",
    "Webhook signature check fails on large bodies",
    "Improve error message for expired invite links",
    "Deprecate the v1 reports endpoint",
    "Index orders by (tenant_id, created_at)",
    "Agent handoff drops conversation context",
    "Add SAML group to role mapping",
    "Autoscale queue workers on backlog depth",
    "Stale cache after a price change",
    "Document the public events API",
    "CSV import chokes on BOM",
    "Add unit tests for discount rules",
];

pub(super) const APPROVALS: [(&str, &str, &str); 12] = [
    (
        "Deploy billing-service v2.14.0 to production",
        "deploy",
        "high",
    ),
    (
        "Run migration 0042_add_invoice_index on the primary",
        "data",
        "high",
    ),
    ("Refund $240.00 to customer #18231", "refund", "medium"),
    (
        "Grant write access on payments-api to a contractor",
        "access",
        "high",
    ),
    (
        "Send renewal reminder to 1,204 customers",
        "outreach",
        "medium",
    ),
    ("Scale api-gateway from 6 to 12 replicas", "infra", "medium"),
    ("Delete 37 stale feature branches", "repo", "low"),
    ("Rotate the Stripe restricted API key", "security", "high"),
    (
        "Issue a 20% goodwill credit to Northwind Ltd",
        "refund",
        "medium",
    ),
    (
        "Merge PR #4821 with failing optional checks",
        "repo",
        "medium",
    ),
    ("Purge CDN cache for docs.example.com", "infra", "low"),
    ("Close 112 tickets inactive for 90 days", "support", "low"),
];

pub(super) const CUSTOMERS: [&str; 14] = [
    "Maria Lopez",
    "Kenji Watanabe",
    "Aisha Bello",
    "Tom Becker",
    "Priya Raman",
    "Lucas Martin",
    "Sofia Rossi",
    "Noah Williams",
    "Fatima Khan",
    "Jonas Berg",
    "Chloe Dubois",
    "Daniel Kim",
    "Elena Petrova",
    "Samuel Osei",
];

pub(super) const SUBJECTS: [&str; 10] = [
    "Charged twice this month",
    "Cannot log in after password reset",
    "Export stuck at 99%",
    "Question about the enterprise plan",
    "API returns 429 constantly",
    "Invoice shows the wrong VAT number",
    "Data missing after migration",
    "How do I add a teammate?",
    "Webhook deliveries failing",
    "Cancel my subscription",
];

pub(super) const CUSTOMER_LINES: [&str; 8] = [
    "Any update on this? It's blocking our month-end close.",
    "I tried that already, same result.",
    "Here is the request id: req_8f2c91d.",
    "This is the third time I'm asking.",
    "Thanks, that worked!",
    "Can I talk to a human, please?",
    "We're on the Business plan, if that matters.",
    "It started after yesterday's update.",
];

pub(super) const AGENT_LINES: [&str; 8] = [
    "I've checked your account and can see the issue.",
    "Could you share a screenshot of the error?",
    "I've reproduced it and opened a ticket with engineering.",
    "A fix is rolling out now; it should be live within the hour.",
    "I've applied a credit to your next invoice.",
    "Let me look into the logs for that request.",
    "I'm escalating this to a specialist who can help further.",
    "Could you try again now and let me know?",
];

pub(super) const TIMELINE: [&str; 8] = [
    "picked up the ticket",
    "pushed 3 commits",
    "ran the test suite: 412 passed",
    "left a review comment",
    "opened a pull request",
    "requested changes",
    "reproduced the bug locally",
    "updated the ticket description",
];
