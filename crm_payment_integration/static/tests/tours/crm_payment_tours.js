/** @odoo-module */

import { registry } from "@web/core/registry";

// A portal customer opens an invoice, pays it on the hosted page and comes back to Odoo.
registry.category("web_tour.tours").add("crm_payment_portal_pay_tour", {
    steps: () => [
        {
            content: "The invoice page offers to pay on Stripe's secure page",
            trigger: "a.o_crm_payment_pay_stripe",
            run: "click",
        },
        {
            content: "Back from Stripe, Odoo says the payment was received",
            trigger: ".o_crm_payment_status[data-state='done'] .o_crm_payment_message:contains('received')",
        },
    ],
});

// A salesperson asks the customer of an opportunity for a deposit.
registry.category("web_tour.tours").add("crm_payment_request_tour", {
    steps: () => [
        {
            content: "Open the Request Payment wizard",
            trigger: ".o_form_view button[name='action_crm_request_payment']",
            run: "click",
        },
        {
            content: "A deposit is proposed",
            trigger: ".modal div[name='request_type'] input[data-value='deposit']:checked",
        },
        {
            content: "Ask for 40% instead of the default",
            trigger: ".modal div[name='deposit_percent'] input",
            run: "edit 40 && click .modal .o_form_view",
        },
        {
            content: "The amount follows",
            trigger: ".modal div[name='amount'] input:value(400.00)",
        },
        {
            content: "Create the invoice and send the link",
            trigger: ".modal button[name='action_confirm']",
            run: "click",
        },
        {
            content: "The salesperson is told the link was sent",
            trigger: ".o_notification:contains('payment link sent')",
        },
        {
            content: "The opportunity's chatter records the request",
            trigger: ".o-mail-Message:contains('400.00 requested')",
        },
    ],
});

// A portal customer cancels a subscription at the end of its period, with a reason.
registry.category("web_tour.tours").add("crm_subscription_portal_cancel_tour", {
    steps: () => [
        {
            content: "Open the subscription from the list",
            trigger: ".o_crm_subscription_row a",
            run: "click",
        },
        {
            content: "Say why",
            trigger: ".o_crm_subscription_cancel input[name='reason']",
            run: "edit Too expensive for us",
        },
        {
            content: "Cancel",
            trigger: ".o_crm_subscription_cancel button[type='submit']",
            run: "click",
        },
        {
            content: "The page says when it ends",
            trigger: ".o_crm_subscription_page .alert-success:contains('ends on')",
        },
    ],
});
