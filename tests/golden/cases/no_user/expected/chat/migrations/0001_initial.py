import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.core.serializers.json
import django.db.models.deletion
import django_ai_chat.approvals
import django_ai_chat.attachments
import django_ai_chat.models
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Conversation',
            fields=[
                ('id', models.UUIDField(default=django_ai_chat.models.new_id, editable=False, primary_key=True, serialize=False)),
                ('title', models.CharField(blank=True, default='', max_length=120)),
                ('title_locked', models.BooleanField(default=False, help_text='Set when a person renamed it: the naming job leaves it alone.')),
                ('ai_model', models.CharField(blank=True, default='', help_text="Chosen from AI_CHAT_MODELS; empty: the responder's model.", max_length=100)),
                ('inserted_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True, db_index=True)),
            ],
            options={
                'ordering': ['-updated_at'],
                'abstract': False,
                'indexes': [django.contrib.postgres.indexes.GinIndex(django.contrib.postgres.search.SearchVector('title', config='english'), name='chat_conv_search')],
            },
        ),
        migrations.CreateModel(
            name='Message',
            fields=[
                ('id', models.UUIDField(default=django_ai_chat.models.new_id, editable=False, primary_key=True, serialize=False)),
                ('text', models.TextField(blank=True)),
                ('tool_calls', models.JSONField(blank=True, default=list)),
                ('tool_results', models.JSONField(blank=True, default=list)),
                ('thinking', models.TextField(blank=True, default='', help_text="The model's reasoning, as the provider streamed it.")),
                ('thinking_seconds', models.FloatField(blank=True, help_text='How long the model thought before answering.', null=True)),
                ('source', models.CharField(choices=[('user', 'User'), ('agent', 'Agent')], default='user', max_length=5)),
                ('complete', models.BooleanField(default=True, help_text='False while an answer streams.')),
                ('stopped', models.BooleanField(default=False, help_text='The person stopped the answer.')),
                ('error', models.CharField(blank=True, default='', max_length=500)),
                ('input_tokens', models.PositiveIntegerField(default=0)),
                ('output_tokens', models.PositiveIntegerField(default=0)),
                ('cache_read_tokens', models.PositiveIntegerField(default=0, help_text="Input tokens read from the provider's prompt cache.")),
                ('reasoning_tokens', models.PositiveIntegerField(default=0, help_text='Output tokens the model spent thinking.')),
                ('cost', models.DecimalField(blank=True, decimal_places=8, help_text='US dollars.', max_digits=14, null=True)),
                ('model_name', models.CharField(blank=True, default='', max_length=100)),
                ('summary', models.TextField(blank=True, default='', help_text='Summary of the conversation up to this message.')),
                ('summary_count', models.PositiveIntegerField(default=0, help_text='Messages the summary covers (this one included).')),
                ('activated_at', models.DateTimeField(blank=True, help_text='The newest among siblings is on the active path.', null=True)),
                ('inserted_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='chat.conversation')),
                ('parent', models.ForeignKey(blank=True, help_text='The message this one follows (its siblings share it).', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='children', to='chat.message')),
                ('response_to', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='response', to='chat.message')),
            ],
            options={
                'ordering': ['id'],
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='Feedback',
            fields=[
                ('id', models.UUIDField(default=django_ai_chat.models.new_id, editable=False, primary_key=True, serialize=False)),
                ('rating', models.CharField(choices=[('up', 'Thumbs up'), ('down', 'Thumbs down')], max_length=4)),
                ('note', models.TextField(blank=True, default='', max_length=2000)),
                ('inserted_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True, db_index=True)),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='feedback', to='chat.message')),
            ],
            options={
                'ordering': ['-updated_at'],
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='Attachment',
            fields=[
                ('id', models.UUIDField(default=django_ai_chat.models.new_id, editable=False, primary_key=True, serialize=False)),
                ('file', models.FileField(max_length=255, storage=django_ai_chat.attachments.attachment_storage, upload_to=django_ai_chat.attachments.attachment_upload_to)),
                ('name', models.CharField(help_text='The name it was uploaded under.', max_length=255)),
                ('content_type', models.CharField(help_text='Read from the content.', max_length=100)),
                ('size', models.PositiveBigIntegerField(help_text='Bytes.')),
                ('text', models.TextField(blank=True, default='', help_text='Extracted text (PDF, text files).')),
                ('pages', models.PositiveIntegerField(blank=True, help_text='Pages of a PDF.', null=True)),
                ('sent_as', models.CharField(blank=True, choices=[('file', 'As a file'), ('text', 'As text')], default='', max_length=4)),
                ('inserted_at', models.DateTimeField(auto_now_add=True)),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attachments', to='chat.message')),
            ],
            options={
                'ordering': ['id'],
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='ShareLink',
            fields=[
                ('id', models.UUIDField(default=django_ai_chat.models.new_id, editable=False, primary_key=True, serialize=False)),
                ('token', models.CharField(default=django_ai_chat.models.new_share_token, editable=False, max_length=64, unique=True)),
                ('title', models.CharField(blank=True, default='', max_length=120)),
                ('messages', models.JSONField(blank=True, default=list, help_text='The shared messages, copied when shared.')),
                ('inserted_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True, db_index=True, help_text='When the snapshot was taken.')),
                ('conversation', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='share_link', to='chat.conversation')),
            ],
            options={
                'ordering': ['-updated_at'],
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='ToolApproval',
            fields=[
                ('id', models.UUIDField(default=django_ai_chat.models.new_id, editable=False, primary_key=True, serialize=False)),
                ('call_id', models.CharField(max_length=200)),
                ('tool_name', models.CharField(max_length=100)),
                ('arguments', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('description', models.JSONField(blank=True, default=list, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('denied', 'Denied'), ('expired', 'Expired')], db_index=True, default='pending', max_length=10)),
                ('reason', models.TextField(blank=True, default='', max_length=2000)),
                ('batch', models.UUIDField(db_index=True, default=django_ai_chat.models.new_id)),
                ('run_state', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('expires_at', models.DateTimeField(default=django_ai_chat.approvals.default_expiry)),
                ('ran_at', models.DateTimeField(blank=True, null=True)),
                ('result', models.JSONField(blank=True, encoder=django.core.serializers.json.DjangoJSONEncoder, null=True)),
                ('inserted_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='approvals', to='chat.message')),
            ],
            options={
                'ordering': ['inserted_at', 'id'],
                'abstract': False,
            },
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(fields=['conversation', '-id'], name='chat_msg_history'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('complete', False)), fields=['conversation'], name='chat_msg_open'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=django.contrib.postgres.indexes.GinIndex(django.contrib.postgres.search.SearchVector('text', config='english'), name='chat_msg_search'),
        ),
        migrations.AddConstraint(
            model_name='feedback',
            constraint=models.UniqueConstraint(fields=('message',), name='chat_feedback_once'),
        ),
    ]
