-- Appends one tenant's audit events to its hash chain in one statement.
-- The chain head lock is taken, the rows are chained and inserted, and the
-- head is advanced inside the server, so a caller can send this and COMMIT in
-- one write: the lock is held for the statement and the commit, never while
-- the application computes hashes or waits for its event loop.
--
-- p_rows: one JSON object per event with every audit_events column except
-- seq, prev_hash and hash. p_before[i] / p_after[i]: the event's canonical
-- form (src/platform/audit/canonical.ts) before and after its JSON-encoded seq,
-- so hash = SHA-256(prev_hash || p_before[i] || '"' || seq || '"' || p_after[i]).
-- Runs as the caller (RLS applies: app.tenant_id must be p_tenant).
CREATE OR REPLACE FUNCTION carebase_audit_append(p_tenant uuid, p_rows jsonb, p_before text[], p_after text[]) RETURNS bigint
  LANGUAGE plpgsql AS $$
DECLARE
  genesis constant bytea := decode(repeat('00', 32), 'hex');
  v_seq bigint;
  v_prev bytea;
  r audit_events;
  n integer := jsonb_array_length(p_rows);
BEGIN
  IF n <> coalesce(array_length(p_before, 1), 0) OR n <> coalesce(array_length(p_after, 1), 0) THEN
    RAISE EXCEPTION 'carebase_audit_append: % rows but % / % canonical parts', n, array_length(p_before, 1), array_length(p_after, 1);
  END IF;
  INSERT INTO audit_chain_heads (tenant_id, seq, hash, anchor_seq, anchor_hash)
  VALUES (p_tenant, 0, genesis, 0, genesis)
  ON CONFLICT (tenant_id) DO UPDATE SET updated_at = now()
  RETURNING seq, hash INTO v_seq, v_prev;
  FOR i IN 1 .. n LOOP
    r := jsonb_populate_record(NULL::audit_events, p_rows -> (i - 1));
    IF r.tenant_id IS DISTINCT FROM p_tenant THEN
      RAISE EXCEPTION 'carebase_audit_append: an event of another tenant';
    END IF;
    v_seq := v_seq + 1;
    r.seq := v_seq;
    r.prev_hash := v_prev;
    r.hash := sha256(v_prev || convert_to(p_before[i] || '"' || v_seq::text || '"' || p_after[i], 'UTF8'));
    INSERT INTO audit_events VALUES (r.*);
    v_prev := r.hash;
  END LOOP;
  UPDATE audit_chain_heads SET seq = v_seq, hash = v_prev, updated_at = now() WHERE tenant_id = p_tenant;
  RETURN v_seq;
END $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_audit_append(uuid, jsonb, text[], text[]) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_audit_append(uuid, jsonb, text[], text[]) TO carebase_app;
