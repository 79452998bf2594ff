import hashlib

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import html2plaintext

from .. import utils
from ..services.gateway import make_idempotency_key

# Stripe accepts at most 20,000 characters in each text field of a dispute's evidence
# (https://docs.stripe.com/api/disputes/update#update_dispute-evidence).
EVIDENCE_TEXT_LIMIT = 20000


class CrmPaymentDisputeEvidenceWizard(models.TransientModel):
    """The evidence of a dispute, pre-filled from its invoice, customer and chatter, editable
    before it is sent to Stripe (the invoice PDF uploaded as a file, the rest as text)."""

    _name = "crm.payment.dispute.evidence.wizard"
    _description = "Submit Evidence for a Stripe Dispute"

    dispute_id = fields.Many2one("crm.payment.dispute", required=True, readonly=True)
    invoice_id = fields.Many2one(related="dispute_id.invoice_id")
    customer_name = fields.Char(compute="_compute_evidence", store=True, readonly=False)
    customer_email_address = fields.Char(compute="_compute_evidence", store=True, readonly=False)
    billing_address = fields.Text(compute="_compute_evidence", store=True, readonly=False)
    product_description = fields.Text(compute="_compute_evidence", store=True, readonly=False)
    service_date = fields.Char(
        compute="_compute_evidence",
        store=True,
        readonly=False,
        help="The service period (or date) the charge paid for, as Stripe shows it.",
    )
    customer_communication = fields.Text(
        compute="_compute_evidence",
        store=True,
        readonly=False,
        help="The messages exchanged with the customer (invoice and customer chatter), sent as "
        "text: Stripe's own customer_communication field takes only a file.",
    )
    uncategorized_text = fields.Text(string="Additional Explanation")
    attach_invoice = fields.Boolean(string="Attach the Invoice PDF", default=True)

    @api.model_create_multi
    def create(self, vals_list):
        """Override: the evidence is pre-filled from the dispute, its invoice and the chatter
        read as superuser, so the user must be allowed to read the dispute itself.

        :raise AccessError: for a dispute the user may not read
        """
        dispute_ids = [vals["dispute_id"] for vals in vals_list if vals.get("dispute_id")]
        self.env["crm.payment.dispute"].browse(dispute_ids).check_access("read")
        return super().create(vals_list)

    @api.depends("dispute_id")
    def _compute_evidence(self):
        for wizard in self:
            dispute = wizard.dispute_id.sudo()
            invoice = dispute.invoice_id
            partner = invoice.partner_id or dispute.partner_id
            wizard.customer_name = partner.name
            wizard.customer_email_address = partner.email
            wizard.billing_address = partner._display_address(without_company=False) if partner else False
            wizard.product_description = (
                "\n".join(
                    line.name or line.product_id.display_name
                    for line in invoice.invoice_line_ids.filtered(lambda ln: ln.display_type == "product")
                )
                or False
            )
            wizard.service_date = wizard._crm_service_period(invoice)
            wizard.customer_communication = wizard._crm_communication(invoice, dispute.partner_id)

    @api.model
    def _crm_service_period(self, invoice):
        if not invoice:
            return False
        if invoice.crm_period_start and invoice.crm_period_end:
            return f"{invoice.crm_period_start} - {invoice.crm_period_end}"
        return str(invoice.invoice_date or "") or False

    @api.model
    def _crm_communication(self, invoice, partner):
        """The emails and comments of the invoice and the customer, oldest first, as text."""
        domain = [
            ("message_type", "in", ("email", "comment", "email_outgoing")),
            ("subtype_id.internal", "=", False),
            "|",
            "&",
            ("model", "=", "account.move"),
            ("res_id", "=", invoice.id or 0),
            "&",
            ("model", "=", "res.partner"),
            ("res_id", "=", partner.id or 0),
        ]
        messages = self.env["mail.message"].sudo().search(domain, order="date, id", limit=200)
        parts = []
        for message in messages:
            text = html2plaintext(message.body or "").strip()
            if text:
                author = message.author_id.name or message.email_from or ""
                parts.append(f"{message.date:%Y-%m-%d %H:%M} {author}: {text}")
        return "\n\n".join(parts)[:EVIDENCE_TEXT_LIMIT] or False

    # === ACTIONS === #

    def action_submit(self):
        """Upload the invoice PDF to Stripe (``purpose=dispute_evidence``) and submit the
        evidence (``disputes.update`` with ``submit=true``); the dispute is then under review.

        :return: a notification action
        :raise UserError: when the dispute no longer takes evidence or Stripe refuses it
        """
        self.ensure_one()
        user = self.env.user
        if not (
            user.has_group("sales_team.group_sale_salesman")
            or user.has_group("account.group_account_invoice")
        ):
            raise AccessError(_("Only salespeople and accountants submit dispute evidence."))
        dispute = self.dispute_id
        dispute.check_access("read")
        dispute._crm_check_can_submit()
        dispute_sudo = dispute.sudo()
        provider_sudo = dispute_sudo.provider_id
        evidence = self._crm_evidence_values()
        file_ids = []
        if self.attach_invoice and dispute_sudo.invoice_id:
            file_ids.append(self._crm_upload_invoice(dispute_sudo))
            evidence["receipt"] = file_ids[0]
        remote = provider_sudo._crm_stripe_call(
            "update_dispute", dispute_sudo.stripe_dispute_id, evidence, submit=True
        )
        dispute_sudo.write(
            {
                "evidence_submitted_at": fields.Datetime.now(),
                "evidence_file_ids": ",".join(file_ids) or False,
            }
        )
        dispute_sudo.env["crm.payment.dispute"]._crm_apply_stripe_dispute(provider_sudo, remote)
        dispute_sudo.activity_ids.filtered(lambda a: a.user_id == user).action_feedback(
            feedback=_("Evidence submitted to Stripe.")
        )
        dispute_sudo.message_post(
            body=_(
                "Evidence submitted to Stripe by %(user)s (%(fields)s).",
                user=user.name,
                fields=", ".join(sorted(evidence)),
            )
        )
        return utils.notification(_("Evidence submitted: Stripe forwards it to the bank."))

    def _crm_evidence_values(self):
        values = {
            "customer_name": self.customer_name,
            "customer_email_address": self.customer_email_address,
            "billing_address": self.billing_address,
            "product_description": self.product_description,
            "service_date": self.service_date,
        }
        text = "\n\n".join(
            part
            for part in (
                self.uncategorized_text,
                self.customer_communication
                and _("Customer communication:\n%(text)s", text=self.customer_communication),
            )
            if part
        )
        if text:
            values["uncategorized_text"] = text
        return {key: value[:EVIDENCE_TEXT_LIMIT] for key, value in values.items() if value}

    def _crm_upload_invoice(self, dispute_sudo):
        invoice = dispute_sudo.invoice_id
        content, __ = (
            self.env["ir.actions.report"].sudo()._render_qweb_pdf("account.account_invoices", invoice.ids)
        )
        provider_sudo = dispute_sudo.provider_id
        key = make_idempotency_key(
            provider_sudo._crm_database_uuid(),
            "dispute-evidence",
            dispute_sudo.id,
            hashlib.sha256(content).hexdigest(),
        )
        name = (invoice.name or "invoice").replace("/", "-") + ".pdf"
        uploaded = provider_sudo._crm_stripe_call("upload_file", content, name, "dispute_evidence", key)
        return uploaded["id"]
