-- Each of these duplicated its table's UNIQUE (tenant_id, id) index, which
-- serves `WHERE tenant_id = $1 ORDER BY id DESC` (every list endpoint's
-- keyset walk) by scanning backwards just as well. Every insert, and every
-- update that is not HOT (a message's status changes, three per SMS), paid
-- for both.
DROP INDEX customers_tenant_id_idx, calls_tenant_id_idx, messages_tenant_id_idx,
           voicemails_tenant_id_idx;
