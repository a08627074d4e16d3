-- `GET /v1/agents` pages through one tenant's agents by email
-- (`WHERE tenant_id = $1 AND email > $cursor ORDER BY email`): with only the
-- global unique index on email, every page walked the other tenants' agents.
CREATE INDEX agents_tenant_email_idx ON agents (tenant_id, email);
