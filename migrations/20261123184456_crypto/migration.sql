CREATE TABLE "crypto_index_keys" (
	"tenant_id" uuid PRIMARY KEY DEFAULT carebase_current_tenant(),
	"key" bytea NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "crypto_keys" (
	"version" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "crypto_keys_version_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"key_id" text NOT NULL UNIQUE,
	"provider" text NOT NULL,
	"status" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "crypto_rotation_jobs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"target_key_id" text NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"batch_size" integer NOT NULL,
	"progress" jsonb DEFAULT '{}' NOT NULL,
	"rows_updated" integer DEFAULT 0 NOT NULL,
	"values_reencrypted" integer DEFAULT 0 NOT NULL,
	"conflicts" integer DEFAULT 0 NOT NULL,
	"remaining" integer,
	"error" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "crypto_index_keys" ADD CONSTRAINT "crypto_index_keys_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- The app reads and creates a tenant's blind-index key; only the re-encrypt
-- job (run as the owner) rewrites one, and nothing deletes one.
REVOKE UPDATE, DELETE ON "crypto_index_keys" FROM carebase_app;
--> statement-breakpoint
-- Key versions and re-encrypt jobs belong to the crypto:rotate CLI (owner).
REVOKE INSERT, UPDATE, DELETE ON "crypto_keys", "crypto_rotation_jobs" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
