ALTER TABLE "rx_patient_medications" ADD COLUMN "drug_text" text;--> statement-breakpoint
ALTER TABLE "rx_patient_medications" ALTER COLUMN "drug_rxcui" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "rx_patient_medications" ADD CONSTRAINT "rx_patient_medications_drug_check" CHECK (num_nonnulls("drug_rxcui", "drug_text") = 1);