-- Draining the security-event inbox claims rows with SELECT .. FOR UPDATE SKIP
-- LOCKED (several processes may drain at once), which needs UPDATE privilege.
GRANT UPDATE ON "audit_inbox" TO carebase_app;
